import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type Checkpoint,
  CONFIG_FILE,
  type LoadedCheckpoint,
  type ModelConfig,
  WEIGHTS_FILE,
} from '../checkpoint/index.js';
import {
  activeVersionDelete,
  isNormserveError,
  NormserveError,
  versionNotFound,
} from '../errors/index.js';
import {
  CompiledModel,
  type EngineName,
  type EngineOptions,
  resolveEngine,
  type StatisticsTap,
  type WasmSupport,
} from '../inference/index.js';
import { finishYielding } from '../nn/index.js';
import {
  ACTIVE_FILE,
  type ActiveRecord,
  type DroppedPin,
  intentsReplacedWords,
  isBrokenCheckpoint,
  ModelRepository,
  type ModelRepositoryOptions,
  type UnsyncedWrite,
  unsyncedWarning,
} from '../repository/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from './engine-runtime.js';
import { type Log, silentLog } from './logger.js';
import { type ReadRetries, ReadsAgain, readRetryScan } from './read-retries.js';
import {
  type AvailableVersion,
  closeCompiled,
  isAvailable,
  type ModelSnapshot,
  type ServedVersion,
} from './served-version.js';
import { liveDriftTaps } from './version-drift.js';
import {
  type PublishingRegistry,
  type PublishOptions,
  type PublishResult,
  VersionPublish,
} from './version-publish.js';

export { type ReadRetries, readRetryScan } from './read-retries.js';
export {
  type AvailableVersion,
  type FailedVersion,
  isAvailable,
  type ModelSnapshot,
  type ServedVersion,
} from './served-version.js';
export type { ActivationNotWritten, PublishResult } from './version-publish.js';

/**
 * The Retry-After of MODEL_UNAVAILABLE for a repository scanned every `pollIntervalMs`
 * (MODEL_POLL_INTERVAL_MS): a version repaired or published by another process is served after
 * the next scan, so that is when a retry may succeed (whole seconds, at least 1; RFC 9110
 * §10.2.3). Undefined when nothing scans (0): then only an activation here repairs the model, at
 * a time no server can tell.
 */
export const unavailableRetryAfterSeconds = (pollIntervalMs: number): number | undefined =>
  pollIntervalMs > 0 ? Math.max(1, Math.ceil(pollIntervalMs / 1000)) : undefined;

export interface RegistryOptions extends ModelRepositoryOptions {
  maxBatchSize: number;
  /** The executor for fused plans (default wasm; js where the runtime or a plan cannot). */
  engine?: EngineName | undefined;
  /** Threads one batch may use, the calling one included (default 1). */
  engineThreads?: number | undefined;
  /** What the runtime's WebAssembly supports (detected; tests simulate other runtimes). */
  wasmSupport?: WasmSupport | undefined;
  log?: Log;
  onLoadFailure?: (name: string, version: number, reason: string) => void;
  onChange?: (snapshot: ModelSnapshot) => void;
  /**
   * isReady with every model that counts serving (default: those of the first scan and those that
   * have served a version here since), or with at least one model serving (STRICT_READINESS=off).
   */
  strictReadiness?: boolean;
  /**
   * The models of the server's start, where another process saw them first (a cluster worker
   * replacing one that died): the first scan counts those of them it finds instead of every model
   * it finds. Absent: every model of the first scan counts.
   */
  startModels?: readonly string[] | undefined;
  /**
   * The Retry-After of MODEL_UNAVAILABLE, in seconds (unavailableRetryAfterSeconds): when the
   * next scan may find a repaired version. Absent: none is sent (nothing scans the repository).
   */
  unavailableRetryAfterSeconds?: number | undefined;
  /**
   * Awaited by this registry's own writes to the repository (publish, activate, deleteVersion)
   * once this process serves the result, before they return: the server's other processes (its
   * cluster workers) refresh `name` now, so that every process of the server serves what the
   * call left (cli/cluster-models.ts). Bounded by the hook; a failure is logged, never thrown (the
   * write is done, and the other processes' next scan catches up). Not set with one process.
   */
  onWrite?: (name: string, active: number | null) => Promise<void>;
}

/**
 * The models this process serves, kept in step with the repository. Changes follow
 * load-new → verify → swap → release-old: a new version is read back from disk and compiled
 * before the snapshot that names it replaces the old one (one assignment), and a request holds
 * the version object it started with, so it finishes on that version whatever happens meanwhile.
 */
export class ModelRegistry {
  readonly repository: ModelRepository;
  private models = new Map<string, ModelSnapshot>();
  private readonly options: RegistryOptions;
  private readonly log: Log;
  private refreshing: Promise<void> | undefined;
  private refreshingRetries: ReadRetries = 'due';
  /** Repository scans started and completed (the poll's clock: propagation is counted in scans). */
  private scansStarted = 0;
  private scansDone = 0;
  private readonly refreshQueues = new Map<string, Promise<unknown>>();
  /** Models opened with `openVersion`: their refreshes read the versions they need only. */
  private readonly openedAlone = new Set<string>();
  private readonly engine: EngineOptions;
  /**
   * The models strict readiness waits for: those of the first scan (the server's start) and those
   * that have served a version since. A model directory that appears later and never loads is
   * reported (FAILED, a warning, normserve_model_ready 0) but leaves a serving process ready.
   */
  private readonly counted = new Set<string>();
  private startedUp = false;

  /** The loads of versions this process failed to read (read-retries.ts). */
  private readonly readsAgain: ReadsAgain;

  constructor(repositoryRoot: string, options: RegistryOptions) {
    this.repository = new ModelRepository(repositoryRoot, {
      activeRecordLockWaitMs: options.activeRecordLockWaitMs,
    });
    this.options = options;
    this.log = options.log ?? silentLog;
    const support = options.wasmSupport;
    // Before the runtime is asked what it supports: this may turn relaxed SIMD on.
    prepareWasmRuntime();
    const { engine, reason } = resolveEngine(options.engine ?? 'wasm', support);
    // Once per process, not per version: the runtime is the same for all of them.
    if (reason !== undefined)
      this.log.warn(
        { reason },
        'WebAssembly engine unavailable; serving with the JavaScript engine',
      );
    this.engine = nodeEngineOptions({
      engine,
      threads: options.engineThreads ?? 1,
      support,
      onHelperError: (err) => this.log.error({ err }, 'engine helper thread failed'),
    });
    this.readsAgain = new ReadsAgain({
      served: (name) => this.models.get(name),
      openedAlone: (name) => this.openedAlone.has(name),
      scansStarted: () => this.scansStarted,
      fingerprint: (...args) => this.fingerprint(...args),
      loadVersion: (...args) => this.loadVersion(...args),
      refreshModel: (...args) => this.refreshModel(...args),
    });
  }

  /** Forgets a model whose directory is gone, releasing its versions' engine threads. */
  private dropModel(name: string): void {
    for (const v of this.models.get(name)?.versions.values() ?? []) closeCompiled(v);
    this.models.delete(name);
    this.openedAlone.delete(name);
    // A model whose directory is removed was unloaded on purpose: it no longer counts.
    this.counted.delete(name);
  }

  /** Releases every loaded version's engine threads (the versions stay usable). */
  close(): void {
    for (const model of this.models.values())
      for (const v of model.versions.values()) closeCompiled(v);
  }

  list(): ModelSnapshot[] {
    return [...this.models.values()];
  }

  /** Whether the repository has a model of that name (a map look-up, cheap per request). */
  has(name: string): boolean {
    return this.models.has(name);
  }

  get(name: string): ModelSnapshot {
    const model = this.models.get(name);
    if (!model)
      throw new NormserveError('MODEL_NOT_FOUND', `model "${name}" is not in the repository`);
    return model;
  }

  /**
   * At least one model has an active (AVAILABLE) version, and (strictReadiness, the default) so
   * does every model that counts for readiness (`countsForReadiness`).
   */
  isReady(): boolean {
    const serving = (m: ModelSnapshot) => m.active !== undefined;
    const models = [...this.models.values()];
    if (!models.some(serving)) return false;
    return (
      !(this.options.strictReadiness ?? true) ||
      models.every((m) => serving(m) || !this.countsForReadiness(m.name))
    );
  }

  /**
   * Whether strict readiness waits for the model: it was in the repository's first scan (a model
   * the server was started with, or every model before that scan ends), or it has served a version
   * in this process since. A model that appeared later and never served does not: it answers for
   * itself (its own readiness, /v2/models/{name}/ready), as in Triton's server vs model readiness.
   */
  countsForReadiness(name: string): boolean {
    return !this.startedUp || this.counted.has(name);
  }

  /** The models that count for strict readiness now (those of the first scan, and since). */
  countedModels(): string[] {
    return [...this.counted];
  }

  /** The version a request should run on: the explicit one, else the active one. */
  resolve(name: string, version?: number): AvailableVersion {
    const model = this.get(name);
    const v = version ?? model.active;
    if (v === undefined) {
      throw new NormserveError(
        'MODEL_UNAVAILABLE',
        model.activeProblem !== undefined
          ? `model "${name}" serves no version: ${model.activeProblem} (activate a version to repair it)`
          : `model "${name}" has no available version (${describeVersions(model)})`,
        { retryAfterSeconds: this.options.unavailableRetryAfterSeconds },
      );
    }
    const served = model.versions.get(v);
    if (!served) throw versionNotFound(name, v);
    if (!isAvailable(served)) {
      throw new NormserveError(
        'VERSION_NOT_FOUND',
        `version ${v} of model "${name}" failed to load: ${served.reason}`,
      );
    }
    return served;
  }

  /**
   * Scans the repository and applies what changed; concurrent calls share one scan, but one that
   * asks to retry `all` failed reads while a scan that retries only the due ones runs gets a
   * scan of its own after it.
   */
  refresh(retries: ReadRetries = 'due'): Promise<void> {
    if (this.refreshing && retries === 'all' && this.refreshingRetries !== 'all') {
      const own = () => this.refresh(retries);
      return this.refreshing.then(own, own);
    }
    if (!this.refreshing) {
      this.scansStarted++;
      this.refreshingRetries = retries;
      this.refreshing = this.scan(retries).finally(() => {
        this.scansDone++;
        this.refreshing = undefined;
      });
    }
    return this.refreshing;
  }

  /** Repository scans completed so far (normserve_repository_scans_total). */
  get scans(): number {
    return this.scansDone;
  }

  private async scan(retries: ReadRetries): Promise<void> {
    const names = await this.repository.listModels();
    for (const name of names) {
      try {
        // The retries first: a version that fails in this scan's refresh waits for the next.
        await this.readsAgain.retryReads(name, retries);
        await this.refreshModel(name);
      } catch (e) {
        this.log.error({ err: e, model: name }, 'refreshing model failed');
      }
    }
    for (const name of this.models.keys()) {
      if (!names.includes(name)) {
        this.dropModel(name);
        this.log.info({ model: name }, 'model removed from the repository');
      }
    }
    if (!this.startedUp) {
      // The models the server was started with count for readiness, serving or not.
      const start = this.options.startModels;
      for (const name of this.models.keys())
        if (!start || start.includes(name)) this.counted.add(name);
      this.startedUp = true;
    }
  }

  /**
   * Loads again `version` of `name` if this process failed to read it (FailedVersion.readFailed),
   * and refreshes the model with it; the snapshot then, or undefined when it was no such failure
   * here. A cluster worker told that another worker serves that version calls it: the version it
   * failed to read once would otherwise stay unserved here until its retry is due, up to 1,024
   * scans, while the other workers serve it. ReadsAgain's (read-retries.ts), with a scan's retries.
   */
  readAgain(name: string, version: number): Promise<ModelSnapshot | undefined> {
    return this.readsAgain.readAgain(name, version);
  }

  /**
   * Reloads one model's versions and active record from disk. Calls for one model run one after
   * the other, so an older, slower refresh can never overwrite the snapshot of a newer one. A
   * version that failed to load is kept as that failure while its files are unchanged (a scan
   * loads a read that failed here again: retryReads).
   */
  refreshModel(
    name: string,
    preloaded?: ServedVersion,
    /** With `preloaded`: it takes the place of this very version object only (loadAgain). */
    replacing?: ServedVersion,
  ): Promise<ModelSnapshot> {
    const previous = this.refreshQueues.get(name) ?? Promise.resolve();
    const next = previous
      .catch(() => undefined)
      .then(() => this.refreshModelNow(name, preloaded, replacing));
    const settled = next.catch(() => undefined);
    this.refreshQueues.set(name, settled);
    void settled.then(() => {
      if (this.refreshQueues.get(name) === settled) this.refreshQueues.delete(name);
    });
    return next;
  }

  private async refreshModelNow(
    name: string,
    preloaded?: ServedVersion,
    replacing?: ServedVersion,
  ): Promise<ModelSnapshot> {
    if (!(await this.repository.hasModel(name))) {
      // Never register a model that has no directory (e.g. an admin call naming an unknown one).
      this.dropModel(name);
      throw new NormserveError('MODEL_NOT_FOUND', `model "${name}" is not in the repository`);
    }
    const previous = this.models.get(name);
    // The record before the listing: a version is renamed into place before any record names it,
    // so a record read first never names a version the listing below has not seen yet.
    let record: ActiveRecord | undefined;
    let recordProblem: string | undefined;
    try {
      record = await this.repository.readActive(name);
    } catch (e) {
      recordProblem = e instanceof Error ? e.message : String(e);
    }
    const onDisk = await this.repository.listVersions(name);
    const versions = new Map<number, ServedVersion>();
    const known = async (v: number): Promise<ServedVersion | undefined> => {
      // A failure loaded elsewhere (a retry that failed again: loadAgain) never replaces the same
      // version loaded meanwhile by another path (a publish's servedEverywhere, readAgain): it
      // swapped in over it, closed it, and with a record naming it the model served nothing
      // (h293 1).
      const current = previous?.versions.get(v);
      const had =
        preloaded?.version === v &&
        (replacing === undefined || current === replacing) &&
        (preloaded.state === 'AVAILABLE' || current?.state !== 'AVAILABLE')
          ? preloaded
          : current;
      return had &&
        (had.state === 'AVAILABLE' || had.fingerprint === (await this.fingerprint(name, v)))
        ? had
        : undefined;
    };
    const load = async (v: number) => (await known(v)) ?? (await this.loadVersion(name, v));
    if (!this.openedAlone.has(name)) {
      for (const v of onDisk) versions.set(v, await load(v));
      return this.swap(name, versions, record, recordProblem);
    }
    // A model opened alone (openVersion): the versions it holds that are still on disk, and the
    // one to serve — the recorded one; without a record, the highest that loads, tried from the
    // highest down. No other version is read or compiled: a recalibrate CLI on a model of 40
    // versions reads its parent and what it publishes; `swap` decides on these as on all of them.
    const held = new Set([...(previous?.versions.keys() ?? []), preloaded?.version]);
    for (const v of onDisk) if (held.has(v)) versions.set(v, await load(v));
    const toServe =
      recordProblem !== undefined ? [] : record ? [record.version] : onDisk.toReversed();
    for (const v of toServe.filter((v) => onDisk.includes(v))) {
      const served = versions.get(v) ?? (await load(v));
      versions.set(v, served);
      if (isAvailable(served)) break;
    }
    const sorted = new Map([...versions].sort(([a], [b]) => a - b));
    return this.swap(name, sorted, record, recordProblem);
  }

  /**
   * The version to serve: the recorded one; without a record, the highest available one. A
   * record that is unreadable or names a version that is not available is never silently
   * replaced by another version (the highest may be one published with activate=false): the
   * version served so far stays served, the problem is reported (status, /readyz, metrics), and
   * with nothing served so far (start-up) the model serves nothing until a version is activated.
   * One exception: a record naming a version whose directory is gone. Nothing writes a record
   * before its version is in place, so the directory was deleted, and whoever deleted it wants it
   * gone; once the version served so far is gone too (it was the one deleted, or at start-up), the
   * highest available version is served as without a record, and the problem says so — serving
   * nothing would take the model down on every replica of the shared repository at once.
   */
  private swap(
    name: string,
    versions: Map<number, ServedVersion>,
    record: ActiveRecord | undefined,
    recordProblem: string | undefined,
  ): ModelSnapshot {
    const previous = this.models.get(name);
    let problem = recordProblem;
    let active: number | undefined;
    const highest = () =>
      [...versions.values()]
        .filter(isAvailable)
        .map((v) => v.version)
        .sort((a, b) => b - a)[0];
    let fellBack = false;
    if (record && problem === undefined) {
      const named = versions.get(record.version);
      if (isAvailable(named)) active = record.version;
      else
        problem = `${name}/${ACTIVE_FILE} names version ${record.version}, which ${named ? `failed to load: ${named.reason}` : 'does not exist'}`;
    }
    if (problem !== undefined) {
      const last = previous?.active;
      active = last !== undefined && isAvailable(versions.get(last)) ? last : undefined;
      // Once fallen back, the highest available version at each poll, as a restarted replica
      // would choose: the model is served as without a record until a version is activated.
      const deleted = record && recordProblem === undefined && !versions.has(record.version);
      if (deleted && (active === undefined || previous?.activeFallback)) {
        active = highest();
        fellBack = active !== undefined;
        problem += fellBack
          ? `; serving version ${active}, the highest available, until a version is activated`
          : '; no other version is available';
      }
      if (problem !== previous?.activeProblem) {
        this.log.warn(
          { model: name, problem, serving: active ?? null },
          active === undefined
            ? 'active-version record unusable; serving no version until one is activated'
            : fellBack
              ? 'active-version record names a deleted version; serving the highest available version'
              : 'active-version record unusable; still serving the last active version',
        );
      }
    } else if (!record) {
      active = highest();
    }
    const snapshot: ModelSnapshot = {
      name,
      versions,
      active,
      activeRecord: record,
      ...(problem !== undefined ? { activeProblem: problem } : {}),
      ...(fellBack ? { activeFallback: true } : {}),
    };
    this.models.set(name, snapshot);
    // Release-old: versions this snapshot no longer holds (removed, or replaced by a fresh load).
    for (const [v, served] of previous?.versions ?? []) {
      if (versions.get(v) !== served) closeCompiled(served);
    }
    if (active !== undefined) this.counted.add(name);
    else if (
      // Once per change of its versions, and not for a directory with none yet (being written).
      this.startedUp &&
      !this.counted.has(name) &&
      versions.size > 0 &&
      previous?.versions.size !== versions.size
    )
      this.log.warn(
        { model: name, versions: describeVersions(snapshot) },
        'model serves no version; it does not count for readiness until one has been available',
      );
    if (previous?.active !== active) {
      // `scan`: the repository scan that is running or ran last (a change made by a scan is seen
      // during scan number `scan`), so propagation can be counted in polls, not wall time.
      this.log.info(
        { model: name, version: active, previous: previous?.active, scan: this.scansStarted },
        'active version changed',
      );
    }
    for (const v of previous?.versions.keys() ?? []) {
      if (!versions.has(v)) this.log.info({ model: name, version: v }, 'version removed');
    }
    this.options.onChange?.(snapshot);
    return snapshot;
  }

  private async fingerprint(name: string, version: number): Promise<string> {
    const dir = this.repository.versionPath(name, version);
    const parts = await Promise.all(
      [CONFIG_FILE, WEIGHTS_FILE].map(async (f) => {
        try {
          const s = await stat(join(dir, f));
          return `${s.size}:${s.mtimeMs}`;
        } catch {
          return 'missing';
        }
      }),
    );
    return parts.join('|');
  }

  /**
   * Serves `version` of `name` from a checkpoint already read from the repository, alone: the
   * model's other versions are neither read nor compiled (the offline CLIs open one version of a
   * model that may have many), then or later: the model's refreshes (a recalibration's under its
   * lock, publish's) read only the version the active-version record names (without a record, the
   * highest that loads) and the one published. Throws like `resolve` when it does not compile.
   */
  async openVersion(
    name: string,
    version: number,
    checkpoint: LoadedCheckpoint,
  ): Promise<AvailableVersion> {
    const loaded = await this.loadVersion(name, version, checkpoint);
    this.dropModel(name);
    this.openedAlone.add(name);
    this.models.set(name, {
      name,
      versions: new Map([[version, loaded]]),
      active: isAvailable(loaded) ? version : undefined,
      activeRecord: undefined,
    });
    return this.resolve(name, version);
  }

  /** Reads (unless given its checkpoint) and compiles one version; a failure is a FAILED version. */
  private async loadVersion(
    name: string,
    version: number,
    preread?: LoadedCheckpoint,
    retry?: number,
  ): Promise<ServedVersion> {
    const fingerprint = await this.fingerprint(name, version);
    const loadedAt = new Date().toISOString();
    let reading = true;
    try {
      const started = performance.now();
      const checkpoint = preread ?? (await this.repository.loadVersion(name, version));
      reading = false;
      // Compiled in slices with the event loop given back between them: the other versions,
      // /healthz and the metrics go on answering while a large version loads (bench/load-stall.ts).
      const compiled = await finishYielding(
        CompiledModel.building(
          checkpoint.network,
          checkpoint.config.input_transform,
          this.options.maxBatchSize,
          checkpoint.config.input_shape,
          {
            ...this.engine,
            onFallback: (reason) =>
              this.log.warn(
                { model: name, version, reason },
                'version runs on the JavaScript engine',
              ),
          },
        ),
      );
      // Before the version is in any snapshot, so nothing serves it (nor reports it ready) until
      // its first call's one-time costs are paid; on the executor alone, no request path: no
      // metrics, no drift statistics, no request logs.
      const warmUpStarted = performance.now();
      await finishYielding(compiled.warmingUp(warmUpTaps(compiled, checkpoint)));
      this.log.info(
        {
          model: name,
          version,
          engine: compiled.executor.engine,
          threads: compiled.executor.threads,
          loadMs: Math.round(performance.now() - started),
          warmUpMs: Number((performance.now() - warmUpStarted).toFixed(1)),
          ...(retry ? { retry } : {}),
        },
        'version loaded',
      );
      return { name, version, state: 'AVAILABLE', checkpoint, compiled, loadedAt, fingerprint };
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      const reasonCode = isNormserveError(e) ? e.code : undefined;
      // A version deleted while it loaded (by another worker or replica, or by hand) lost its
      // files under the loader: not a broken checkpoint, so neither an error nor a load failure
      // counted (normserve_model_load_failures_total alerts on those); the refresh its deletion
      // announces drops it.
      if (await this.goneWhileLoading(name, version)) {
        this.log.info({ model: name, version, reason }, 'version deleted while it loaded');
      } else {
        this.log.error(
          { model: name, version, reason, code: reasonCode, ...(retry ? { retry } : {}) },
          retry ? 'version failed to load again' : 'version failed to load',
        );
        this.options.onLoadFailure?.(name, version, reason);
      }
      return {
        name,
        version,
        state: 'FAILED',
        reason,
        ...(reasonCode !== undefined ? { reasonCode } : {}),
        // While reading: any failure but the files' own. After: this process's memory (a
        // RangeError sizing the engine's buffers), which another process may have (h288).
        ...((reading && !isBrokenCheckpoint(e)) || e instanceof RangeError
          ? {
              readFailed: true as const,
              retryScan: readRetryScan(this.scansStarted, retry ?? 0),
              ...(retry ? { readRetries: retry } : {}),
            }
          : {}),
        loadedAt,
        fingerprint,
      };
    }
  }

  /** Whether `version`'s directory is gone (deleted, or removed by hand) after a failed load. */
  private async goneWhileLoading(name: string, version: number): Promise<boolean> {
    try {
      return !(await this.repository.listVersions(name)).includes(version);
    } catch {
      return false; // the model directory cannot be read: the failure stands as it is
    }
  }

  /**
   * Publishes a checkpoint as the next version, loads it back from disk (what other replicas will
   * see) and, with `activate`, records and serves it. Without `activate`, the current active
   * version is recorded first, so "highest version wins" does not switch to the new one.
   *
   * The files are written first, under a temporary name; then, in one hold of the active-version
   * record's lock (withActiveRecord), the pin (below) is written if needed, the version renamed
   * into place, loaded back and activated: the lock every deletion takes, so a deletion in any
   * process comes before the version exists or after its activation, and never loses the
   * caller's work between the two (a 404 for a version just published: a retention job deleting
   * every inactive version met it there).
   *
   * The pin: a version that must not be served (no `activate`), or not yet (`ifActive`), would
   * be served as the highest where the record does not name a version that is there; the version
   * served is recorded first (HeldActiveRecord.pin decides, from the record on disk), and once the
   * version is published the pin becomes a plain record naming it (settlePin). A publish that
   * publishes nothing undoes its pin in the same hold; its writes and undo all happen in that one
   * hold, so no other publish's pin interleaves with it (h267).
   *
   * `ifActive` (a recalibration's parent) makes the activation conditional: the new version is
   * recorded as active only if the record still names `ifActive` when it is written, decided under
   * the record's lock against the file every process shares (writeActiveIf). An operator's
   * activation (rollback) in any process since the caller began wins: the version is published,
   * not activated, and `activeFound` says what the record named instead.
   *
   * A record's lock that stays held (ACTIVE_RECORD_BUSY), or a lock file that cannot be written,
   * fails the call, nothing published, when a pin is needed; otherwise the version is published
   * without the lock, not activated (`activationBusy`).
   *
   * A conditional activation whose condition holds (the pin names `ifActive`) is recorded in the
   * pin just before the rename (`pinned_publishing`: the version about to be published,
   * recordIntent): should the process die between the rename and the activation's write, the
   * cleanup that finds the pin's writer gone finishes the activation (settleAbandonedPin,
   * active-record.ts). When the version is published but its activation is not written after
   * all, the intent goes with the pin (settlePin).
   *
   * `fence`, the fencing check of the lock the caller holds (a recalibration's model lock), runs
   * immediately before the rename that publishes and before the conditional activation's write:
   * LOCK_LOST from it means that write was not made. `jobId` (a recalibration's job) is logged
   * as `job` with 'version published', so the line leads to the job that wrote the version.
   * `stopWaiting` (a recalibration's check of the shutdown's interruption) ends the wait for the
   * record's lock by throwing: the publish then fails with its error, nothing written.
   *
   * The use case itself is VersionPublish's (version-publish.ts), one object per call.
   */
  async publish(
    checkpoint: Checkpoint,
    activate: boolean,
    note?: string,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    // Constructed in the async call: what it throws rejects the call, as the code it came from did.
    return new VersionPublish(this.publishing(), checkpoint, activate, note, options).run();
  }

  /**
   * What a publish asks of this registry (version-publish.ts), each call made through it, so that
   * a spy on one of its methods sees the publish's calls too.
   */
  private publishing(): PublishingRegistry {
    return {
      repository: this.repository,
      log: this.log,
      served: (name) => this.models.get(name),
      loadVersion: (...args) => this.loadVersion(...args),
      refreshModel: (...args) => this.refreshModel(...args),
      warnIntentsReplaced: (...args) => this.warnIntentsReplaced(...args),
      unsyncedWarning: (...args) => this.unsyncedWarning(...args),
      announce: (...args) => this.announce(...args),
    };
  }

  /**
   * Says which dead publishes' activations, still to be finished, the activation of `version`
   * replaced (ActiveWrite.intentsReplaced): the later activation wins, their versions stay
   * published and inactive (h288: dropped without a word).
   */
  private warnIntentsReplaced(name: string, version: number, replaced?: DroppedPin[]): void {
    if (replaced === undefined || replaced.length === 0) return;
    this.log.warn(
      { model: name, version, intentsReplaced: replaced },
      `activated version ${version} of "${name}"${intentsReplacedWords(name, replaced)}`,
    );
  }

  /**
   * Makes `version` the served version of `name`, persistently (rollback or roll forward).
   * `previous` is the version it replaced, read under the record's lock with the write, so that
   * concurrent activations (in any process) each name the one before them in the order they took
   * effect: the version the replaced record named, else (no usable record) the one served here.
   */
  async activate(
    name: string,
    version: number,
    note?: string,
  ): Promise<{
    snapshot: ModelSnapshot;
    previous: number | null;
    /** Active, but the record's directory could not be synced: what happened, and why. */
    storageWarning?: NormserveError;
  }> {
    const before = await this.refreshModel(name).catch(() => undefined);
    this.resolve(name, version); // exists and is AVAILABLE, or a 404 naming why
    const { replaced, unsynced, intentsReplaced } = await this.repository.writeActive(
      name,
      version,
      note,
    );
    this.warnIntentsReplaced(name, version, intentsReplaced);
    const previous = replaced ?? before?.active ?? null;
    try {
      const snapshot = await this.refreshModel(name);
      if (!unsynced) return { snapshot, previous };
      const happened = `version ${version} of "${name}" is active`;
      return {
        snapshot,
        previous,
        storageWarning: this.unsyncedWarning(name, version, unsynced, happened),
      };
    } finally {
      await this.announce(name); // written: the others read it now, whatever this refresh did
    }
  }

  /**
   * Makes `version` the served version of `name` only if the active-version record still names
   * `expected` (decided under the record's lock, against the file every process shares:
   * writeActiveIf), so that an operator's activation made meanwhile in any process stands.
   * Returns whether it did, and the version the record named when it did not.
   */
  async activateIf(
    name: string,
    version: number,
    expected: number,
    note?: string,
  ): Promise<{ activated: boolean; found?: number | null }> {
    this.resolve(name, version); // exists and is AVAILABLE, or a 404 naming why
    const written = await this.repository.writeActiveIf(name, version, expected, note);
    if (!written.written) return { activated: false, found: written.found };
    this.warnIntentsReplaced(name, version, written.intentsReplaced);
    try {
      await this.refreshModel(name);
    } finally {
      await this.announce(name);
    }
    return { activated: true };
  }

  /**
   * Deletes a version that is not the active one; `storageWarning` when it is deleted but the
   * model directory could not be synced after.
   */
  async deleteVersion(
    name: string,
    version: number,
  ): Promise<{ snapshot: ModelSnapshot; storageWarning?: NormserveError }> {
    const model = await this.refreshModel(name);
    if (!model.versions.has(version)) throw versionNotFound(name, version);
    // Served as the highest version without a record; a record naming it is checked again under
    // the record's lock, as an activation writes it (repository.deleteVersion).
    if (model.active === version) throw activeVersionDelete(name, version);
    const { unsynced } = await this.repository.deleteVersion(name, version);
    try {
      const snapshot = await this.refreshModel(name);
      if (!unsynced) return { snapshot };
      const happened = `version ${version} of "${name}" was deleted`;
      return { snapshot, storageWarning: this.unsyncedWarning(name, version, unsynced, happened) };
    } finally {
      await this.announce(name); // deleted: the others read it now, whatever this refresh did
    }
  }

  /**
   * A write of `name`'s version `version` that took effect but could not be synced: the storage
   * warning its answer carries (what `happened`, and that a crash may undo it), logged as an error.
   */
  private unsyncedWarning(
    name: string,
    version: number,
    unsynced: UnsyncedWrite,
    happened: string,
  ): NormserveError {
    const warning = unsyncedWarning(unsynced, happened, this.repository.root);
    this.log.error(
      { model: name, version, err: unsynced.cause, code: warning.code },
      warning.message,
    );
    return warning;
  }

  /** This process wrote `name`'s versions or record: the server's other processes follow now. */
  private async announce(name: string): Promise<void> {
    try {
      await this.options.onWrite?.(name, this.models.get(name)?.active ?? null);
    } catch (e) {
      this.log.error({ err: e, model: name }, 'telling the other workers of a change failed');
    }
  }

  /** The config of a served version (for metadata), or throws like `resolve`. */
  config(name: string, version?: number): ModelConfig {
    return this.resolve(name, version).checkpoint.config;
  }
}

/**
 * The taps live drift reads during a served call (version-drift.ts), for the warm-up's statistics
 * call; none where they cannot be made (the drift service then serves the version without them).
 */
function warmUpTaps(compiled: CompiledModel, checkpoint: LoadedCheckpoint): StatisticsTap[] {
  try {
    return liveDriftTaps(compiled.plan, checkpoint.network).taps;
  } catch {
    return [];
  }
}

function describeVersions(model: ModelSnapshot): string {
  if (model.versions.size === 0) return 'no version directories';
  return [...model.versions.values()]
    .map(
      (v) => `${v.version}: ${v.state}${v.state === 'FAILED' && v.reason ? ` (${v.reason})` : ''}`,
    )
    .join('; ');
}
