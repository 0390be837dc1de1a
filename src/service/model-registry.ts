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
  type ErrorCode,
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
  droppedPinsWords,
  type HeldActiveRecord,
  intentsReplacedWords,
  isBrokenCheckpoint,
  isStorageFailure,
  ModelRepository,
  type ModelRepositoryOptions,
  refusedByStorage,
  storageFailure,
  type UnsyncedWrite,
  unsyncedWarning,
  type WrittenPin,
} from '../repository/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from './engine-runtime.js';
import { type Log, silentLog } from './logger.js';
import { liveDriftTaps } from './version-drift.js';

/** What every version loaded in this process has, whatever its state. Immutable once created. */
interface VersionBase {
  readonly name: string;
  readonly version: number;
  readonly loadedAt: string;
  /**
   * Sizes and mtimes of the version's files: a FAILED version is loaded again when they change
   * (and a read that failed, when a scan's retry is due: FailedVersion.retryScan).
   */
  readonly fingerprint: string;
}

/** A version that loaded and compiled: it can serve. */
export interface AvailableVersion extends VersionBase {
  readonly state: 'AVAILABLE';
  readonly checkpoint: LoadedCheckpoint;
  readonly compiled: CompiledModel;
}

/** A version that did not load: it is listed with why, never served. */
export interface FailedVersion extends VersionBase {
  readonly state: 'FAILED';
  /** Why loading failed. */
  readonly reason: string;
  /** The catalogue code of that failure, when it has one. */
  readonly reasonCode?: ErrorCode;
  /**
   * The failure came while reading its files and is not the files' own (isBrokenCheckpoint): an
   * errno — EMFILE, ESTALE, EIO, and EACCES too, which a root-squashed NFS mount or a replica of
   * another uid gives one process alone — or an error building the network from them, or a
   * RangeError sizing the engine's buffers after (this process's memory). Another process may load the version, and serve it. A
   * refresh keeps the failure while the files' fingerprint is unchanged; a publish's pin loads it
   * again, and refuses while it still fails (servedEverywhere) rather than guess: h282 classed
   * EACCES and errors without an errno as every process's, and a replica then pinned an older
   * version than the others served (h283 F3). A repository scan loads it again once its retry is
   * due (`retryScan`), so an EMFILE once does not keep this process serving an older version than
   * every other process until its files change or it restarts.
   */
  readonly readFailed?: true;
  /**
   * With `readFailed`: the repository scan from which it is loaded again (ModelRegistry.scan
   * counts them: MODEL_POLL_INTERVAL_MS apart) — the next scan after the failure, then twice as
   * many scans after each retry that failed too (readRetryScan).
   */
  readonly retryScan?: number;
  /** With `readFailed`: how many scans loaded it again, each failing to read it again. */
  readonly readRetries?: number;
}

/** One version as loaded in this process, told apart by `state`. */
export type ServedVersion = AvailableVersion | FailedVersion;

/** A model's versions and its active version; replaced as a whole, never mutated. */
export interface ModelSnapshot {
  readonly name: string;
  readonly versions: ReadonlyMap<number, ServedVersion>;
  /**
   * The served version: the recorded one (active-version.json); without a record, the highest
   * available one. While the record is unusable (activeProblem), the version served before it
   * became so; none if there was none (a start-up never guesses), except for a record naming a
   * version whose directory is gone: once the version served before is gone too (or at start-up),
   * the highest available one, as without a record.
   */
  readonly active: number | undefined;
  readonly activeRecord: ActiveRecord | undefined;
  /** Why the active-version record cannot be followed (unreadable, or naming no available version). */
  readonly activeProblem?: string;
  /** The record names a deleted version: `active` is the highest available one (see `swap`). */
  readonly activeFallback?: true;
}

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

/** What `publish` did: the new version, and whether it is the active one. */
export interface PublishResult {
  version: number;
  activated: boolean;
  /**
   * With `ifActive`, when the condition failed: the version the active-version record named
   * instead (null: no usable record). With activationBusy: the version it names (read without
   * the lock).
   */
  activeFound?: number | null;
  /**
   * With `activate`, when the activation was not written because the active-version record's
   * lock stayed held (ACTIVE_RECORD_BUSY) or the storage failed (STORAGE_FULL,
   * STORAGE_UNAVAILABLE): that error. The version is published all the same (on disk, listed,
   * loaded), so this is the caller's to report, not a failure of `publish`.
   */
  activationBusy?: ActivationNotWritten;
  /**
   * The version is published (and, if `activated`, active) but the model directory could not be
   * synced after a rename (storageWarning's message says what happened): reported, not thrown.
   */
  storageWarning?: NormserveError;
}

/**
 * The most versions above the one served that a publish's pin loads again (servedEverywhere), the
 * highest first: bounds the loads made holding the record's lock.
 */
const MAX_FRESH_LOADS = 4;

/**
 * The most scans between two retries of a read that fails every time (FailedVersion.retryScan):
 * 2^10 scans, 34 min at the default MODEL_POLL_INTERVAL_MS of 2 s.
 */
const MAX_READ_RETRY_EXPONENT = 10;

/**
 * The scan from which a version whose read failed (after `retries` scans loaded it again, each
 * failing too) is loaded again: the next scan, then 2, 4, 8… scans later — a transient EMFILE is
 * over at the next poll, and a failing disk is not read at every one.
 */
export const readRetryScan = (failedInScan: number, retries: number): number =>
  failedInScan + 2 ** Math.min(retries, MAX_READ_RETRY_EXPONENT);

/**
 * Which versions a scan loads again whose read failed here (FailedVersion.readFailed): those
 * whose retry is due (the periodic scan), or every one (`all`: SIGHUP, an operator's "reload"
 * after fixing the storage). Either way the highest first and at most `due`: one a scan, `all`:
 * MAX_FRESH_LOADS, per model (retryReads).
 */
export type ReadRetries = 'due' | 'all';

/**
 * A pinning publish refused because which version every process serves cannot be told here
 * (servedEverywhere, publish's servedNow): `why`, and what to do before the last resort.
 */
function servedUnknown(name: string, why: string, remedy: string): NormserveError {
  return new NormserveError(
    'STORAGE_UNAVAILABLE',
    `cannot tell which version of "${name}" is served: ${why}; nothing was pinned — ${remedy}, or activate a version (POST /v1/models/${name}/versions/<v>:activate)`,
  );
}

/** An activation that was not written, after which a published version stays published. */
export type ActivationNotWritten = NormserveError & {
  readonly code: 'ACTIVE_RECORD_BUSY' | 'STORAGE_FULL' | 'STORAGE_UNAVAILABLE';
};

// isStorageFailure of a NormserveError is its code being STORAGE_FULL or STORAGE_UNAVAILABLE (an
// errno is read from `code`, which a NormserveError holds a catalogue code in).
const isActivationNotWritten = (e: unknown): e is ActivationNotWritten =>
  isNormserveError(e) && (e.code === 'ACTIVE_RECORD_BUSY' || isStorageFailure(e));

export const isAvailable = (v: ServedVersion | undefined): v is AvailableVersion =>
  v?.state === 'AVAILABLE';

/** Releases a version's engine threads; a FAILED version holds none. */
const closeCompiled = (v: ServedVersion): void => {
  if (v.state === 'AVAILABLE') v.compiled.close();
};

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
  /** The loads of failed reads running (loadAgain), by model and version. */
  private readonly readsAgain = new Map<
    string,
    { failed: FailedVersion; done: Promise<ModelSnapshot> }
  >();
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
        await this.retryReads(name, retries);
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
   * A scan's retries of `name`'s reads that failed here (ReadRetries: the due ones, or `all`),
   * each loaded outside the model's refresh queue and then handed to a refresh (loadAgain), so
   * that a publish, whose refreshes run holding the record's lock, never waits for them there.
   */
  private async retryReads(name: string, retries: ReadRetries): Promise<void> {
    const snapshot = this.models.get(name);
    if (snapshot === undefined || this.openedAlone.has(name)) return;
    const due = [...snapshot.versions.values()]
      .filter(
        (v): v is FailedVersion =>
          v.state === 'FAILED' &&
          v.readFailed === true &&
          (retries === 'all' || this.scansStarted >= (v.retryScan ?? 0)),
      )
      .sort((a, b) => b.version - a.version)
      .slice(0, retries === 'all' ? MAX_FRESH_LOADS : 1);
    for (const failed of due) await this.loadAgain(name, failed);
  }

  /**
   * Loads again `version` of `name` if this process failed to read it (FailedVersion.readFailed),
   * and refreshes the model with it; the snapshot then, or undefined when it was no such failure
   * here. A cluster worker told that another worker serves that version calls it: the version it
   * failed to read once would otherwise stay unserved here until its retry is due, up to 1,024
   * scans, while the other workers serve it.
   */
  async readAgain(name: string, version: number): Promise<ModelSnapshot | undefined> {
    const had = this.models.get(name)?.versions.get(version);
    if (had?.state !== 'FAILED' || had.readFailed !== true || this.openedAlone.has(name))
      return undefined;
    return this.loadAgain(name, had);
  }

  /**
   * Loads `failed` again, outside the refresh queue, and refreshes its model with what loaded: a
   * retry (readRetries counted on, the next one twice as far) while its files are unchanged, a
   * fresh load when they changed. Released when the refreshed snapshot does not hold it.
   */
  private loadAgain(name: string, failed: FailedVersion): Promise<ModelSnapshot> {
    // One load of a failure at a time: a scan's retry and a worker's readAgain of the same
    // version join (h294 1: both loaded it, and the second copy replaced and closed the first).
    const key = `${name}\0${failed.version}`;
    const running = this.readsAgain.get(key);
    if (running?.failed === failed) return running.done;
    const done = this.loadAgainNow(name, failed).finally(() => {
      if (this.readsAgain.get(key)?.done === done) this.readsAgain.delete(key);
    });
    this.readsAgain.set(key, { failed, done });
    return done;
  }

  private async loadAgainNow(name: string, failed: FailedVersion): Promise<ModelSnapshot> {
    const { version } = failed;
    // Replaced since it was chosen (a SIGHUP's list is made once, then loaded one at a time):
    // nothing to read again.
    const snapshot = this.models.get(name);
    if (snapshot !== undefined && snapshot.versions.get(version) !== failed) return snapshot;
    const unchanged = (await this.fingerprint(name, version)) === failed.fingerprint;
    const retry = unchanged ? (failed.readRetries ?? 0) + 1 : undefined;
    const loaded = await this.loadVersion(name, version, undefined, retry);
    const held = () => this.models.get(name)?.versions.get(version) === loaded;
    try {
      // In place of that failure only: a version another path loaded meanwhile (a publish's
      // pin, a refresh after its files changed) stays as it is.
      return await this.refreshModel(name, loaded, failed);
    } finally {
      if (!held()) closeCompiled(loaded);
    }
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
   * The version a publish's pin names when the record on disk does not name one that is there
   * (HeldActiveRecord.pin's `servedNow`): the one every process sharing the repository serves —
   * the highest that loads — not only this process's view of it. The versions above the one served
   * here that this process failed to read (`readFailed`: an EMFILE once, kept FAILED until a
   * scan's retry or a change of its files) are loaded again, from the highest down, the highest MAX_FRESH_LOADS of
   * them whatever their number (h282 R2: more of them refused every pinning publish without a
   * try, until a restart): one that loads now is served here too, and named; one whose files turn
   * out broken (or that does not compile) is passed over (kept as that failure, not
   * loaded again the next time); one that still cannot be read here may be what every other
   * process serves, and the publish is refused (STORAGE_UNAVAILABLE, nothing pinned, nothing
   * published) rather than pin a version that rolls every other replica back (h279 R3) — as it is
   * when all of those turned out broken and more are below them, not tried by this publish (the
   * next one tries them). The rule the CLIs follow to open the version a server would serve
   * (loadModelDirectory).
   *
   * Run under the record's lock (the pin is decided from the disk there): its reloads hold the
   * lock for at most MAX_FRESH_LOADS loads of a version, and a writer in another process waits for
   * it up to its bound (activeRecordLockWaitMs, 60 s) before failing with ACTIVE_RECORD_BUSY.
   */
  private async servedEverywhere(snapshot: ModelSnapshot): Promise<number | undefined> {
    const { name, active } = snapshot;
    const unread = [...snapshot.versions.values()]
      .filter(
        (v): v is FailedVersion =>
          v.state === 'FAILED' &&
          v.readFailed === true &&
          (active === undefined || v.version > active),
      )
      .sort((a, b) => b.version - a.version);
    const refused = (version: number, reason: string) =>
      servedUnknown(
        name,
        `version ${version} cannot be read here (${reason}), and other processes sharing the repository may be serving it`,
        "make it readable by this process (the storage, the files' permissions, this process's memory) and retry",
      );
    for (const { version } of unread.slice(0, MAX_FRESH_LOADS)) {
      const loaded = await this.loadVersion(name, version);
      if (isAvailable(loaded)) {
        // Closed only when the snapshot does not hold it (as publish does after its refresh): a
        // refresh that rejects after swapping it in leaves it served (h282 R4).
        const held = () => this.models.get(name)?.versions.get(version) === loaded;
        const refreshed = await this.refreshModel(name, loaded).catch((e: unknown) => {
          if (!held()) closeCompiled(loaded);
          throw e;
        });
        // Not on disk any more (deleted meanwhile): not served, and released.
        if (!held()) closeCompiled(loaded);
        return refreshed.active;
      }
      if (loaded.readFailed) throw refused(version, loaded.reason);
      // Its files are broken (or it does not compile): no process serves it; the next one down,
      // this failure kept in place of the one that may have passed (not loaded again each time).
      await this.refreshModel(name, loaded).catch(() => undefined);
    }
    const untried = unread[MAX_FRESH_LOADS];
    if (untried !== undefined)
      throw refused(
        untried.version,
        `${untried.reason}; the ${MAX_FRESH_LOADS} above it were loaded again by this publish, and it was not`,
      );
    return active;
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
   */
  async publish(
    checkpoint: Checkpoint,
    activate: boolean,
    note?: string,
    options: {
      ifActive?: number;
      fence?: () => Promise<void>;
      jobId?: string;
      stopWaiting?: () => void;
    } = {},
  ): Promise<PublishResult> {
    const { stopWaiting } = options;
    const name = checkpoint.config.name;
    const conditional = activate && options.ifActive !== undefined;
    const pinning = !activate || conditional;
    // Written before anything else, so a full disk fails here, with nothing written at all.
    const staged = await this.repository.stageVersion(checkpoint);
    // The cleanup before staging settled a dead publisher's pin: said as the start-up's is.
    const settled = staged.pinSettled;
    if (settled !== undefined && 'activated' in settled)
      this.log.warn(
        {
          model: name,
          version: settled.activated,
          ...(settled.intentsReplaced ? { intentsReplaced: settled.intentsReplaced } : {}),
        },
        `activated a version whose publish died between publishing it and recording it as active (its pin named it)${intentsReplacedWords(name, settled.intentsReplaced)}`,
      );
    else if (settled !== undefined)
      this.log.info({ model: name }, 'undid the pin of a publish that died before publishing');
    if (staged.pinsDropped) this.warnPinsDropped(name, staged.pinsDropped);
    // The version served now, which a pin names: asked only when the record on disk calls for a
    // pin, and then under the record's lock, so that it is what every process serves when the
    // pin lands (a version published meanwhile by a `train`, which takes no lock, included: h269).
    // Not only this process's view: a version above it that this process failed to read (an
    // EMFILE once, kept FAILED while its files are unchanged) is served by every other process,
    // and a pin naming the version served here would roll them all back (servedEverywhere).
    const servedNow = async () => {
      const snapshot = await this.refreshModel(name).catch(() => this.models.get(name));
      const served = snapshot && (await this.servedEverywhere(snapshot));
      // None here while the model has versions: another process may serve one, which a publish
      // without a pin would roll back by serving this version as the highest (h288).
      if (served === undefined && (await this.repository.listVersions(name)).length > 0)
        throw servedUnknown(
          name,
          'none of its versions loads in this process, and other processes sharing the repository may be serving one',
          'make one loadable here and retry, publish this one activated',
        );
      return served;
    };
    let pin: WrittenPin | undefined;
    /** A pin written and then not undone (unpin): its staged directory is kept for the cleanup. */
    let pinLeft = false;
    /** Set once renamed into place; `published` once loaded back too. */
    let renamed: number | undefined;
    let published: { version: number; loaded: AvailableVersion } | undefined;
    let unsynced: UnsyncedWrite | undefined;
    let result: PublishResult | undefined;
    /** Why the version renamed into place does not load, when it does not. */
    let loadFailure: string | undefined;
    /** What became of that version, when the hold deleted it again. */
    let removedAgain: string | undefined;
    /** Says that nothing was published because the version served could not be pinned first. */
    const nothingPublished = (e: ActivationNotWritten, version: number | undefined) =>
      new NormserveError(
        e.code,
        `${e.message}, so no version was published (the current version${version === undefined ? '' : ` ${version}`} must be recorded as active first)`,
        { retryAfterSeconds: e.retryAfterSeconds, cause: e, extra: { ...e.extra } },
      );
    /**
     * Undoes the pin, in the hold (the publish published nothing, or what it published is gone
     * again). One that cannot be undone is logged as an error saying what to do, and keeps its
     * staged directory (pinLeft) for the cleanup after this process to remove with the pin
     * (settleAbandonedPin), instead of a pin naming nothing, left for good.
     */
    const unpin = async (held: HeldActiveRecord, failure: unknown): Promise<void> => {
      if (pin === undefined) return;
      const written = pin;
      pin = undefined;
      const what =
        renamed === undefined
          ? 'nothing was published'
          : `version ${renamed} was published, did not load and was deleted again`;
      try {
        const undone = await held.unpin(written);
        this.log.info(
          { model: name, version: written.record.version, undone },
          undone
            ? `pin of the active version undone: ${what}`
            : `pin of the active version left: the record was changed by hand (${what})`,
        );
      } catch (e) {
        // Before the rename its staged directory is kept, and the cleanup after this process
        // removes both; after it (the version deleted again) there is no directory to judge by,
        // and the pin, which names the version served, stays until a version is activated.
        if (renamed === undefined) pinLeft = true;
        this.log.error(
          {
            model: name,
            version: written.record.version,
            err: e,
            cause: failure instanceof Error ? failure.message : String(failure),
          },
          written.intentOnly
            ? `the pin of version ${written.record.version} written over its own record before a publish that failed (${what}) could not be undone: ${ACTIVE_FILE} keeps naming version ${written.record.version}, which changes nothing served; the cleanup after this process puts the record under it back${renamed === undefined ? ' (the staged directory kept for that)' : ''}`
            : `the pin of version ${written.record.version} written before a publish that failed (${what}) could not be undone: ${ACTIVE_FILE} keeps naming it, so versions published later are not served ${renamed === undefined ? 'until the cleanup after this process undoes it (its staged directory kept for that) or a version is activated' : 'as the highest until a version is activated'} (POST /v1/models/${name}/versions/<v>:activate)`,
        );
      }
    };
    /**
     * The version is published and not activated: the pin becomes a plain record naming the same
     * version, in the hold, so that the next publish finds a lasting record rather than a pin to
     * pin over (each inactive publish used to nest the one before it in `pinned_over`, h267), and
     * no cleanup finishes an activation this call reports not made (the pin's intent goes with
     * it). Best effort: a pin left names the version served all the same, and is logged.
     */
    const settlePin = async (held: HeldActiveRecord, version: number): Promise<void> => {
      if (pin === undefined) return;
      const written = pin;
      pin = undefined;
      try {
        // The record lock's fence only: this replaces this call's own write, whatever the
        // caller's lock says.
        const settled = await held.settlePin(
          written,
          `recorded as active when version ${version} was published without being activated`,
        );
        if (settled.dropped.length > 0) this.warnPinsDropped(name, settled.dropped);
        // Not this call's pin any more: changed by hand, or a rewrite of it (its intent) that
        // landed though it reported a failure (a network file system's retried rename): left as
        // it is, and said (h295 2).
        if (!settled.written)
          this.log.warn(
            { model: name, version },
            `the pin in ${ACTIVE_FILE} was not made a lasting record: the record is no longer exactly the one this publish wrote, and is left as it is; if it still names version ${version} as being activated (pinned_publishing), a cleanup will activate it once this process is gone, unless a version is activated first`,
          );
      } catch (e) {
        const intent = written.record.pinned_publishing;
        this.log.warn(
          { model: name, version: written.record.version, err: e },
          intent === undefined
            ? `the pin in ${ACTIVE_FILE} stays (it names version ${written.record.version}, the version served): the next publish replaces it`
            : `the pin in ${ACTIVE_FILE} keeps naming version ${intent.version} as being activated: a cleanup will activate it once this process is gone (or, while it lives, once the record is an hour old to a replica on another host, a day old on this one), unless a version is activated first`,
        );
      }
    };
    /**
     * Under the publish's hold, just before each try of the rename (given the number chosen):
     * the pin names the version it is about to publish, so that a death between the rename and
     * the activation below is finished by the cleanup instead of leaving the pin for good
     * (settleAbandonedPin). Only when that activation will be written: the pin names `ifActive`
     * (it was written for this publish, so the condition holds, and nothing else writes the
     * record while this hold lasts). With the staged config.json's digest (a recalibration's is
     * its own: its provenance): the cleanup tells by it that the version under that number is this
     * one, not another publisher's (a `train` takes no lock). The inode is recorded too, not relied
     * on: a rename keeps it on a local file system only.
     */
    const recordIntent = async (held: HeldActiveRecord, version: number): Promise<void> => {
      if (pin === undefined || pin.record.version !== options.ifActive) return;
      const dir = join(this.repository.modelPath(name), staged.tempName);
      let inode: string;
      try {
        inode = (await stat(dir, { bigint: true })).ino.toString();
      } catch (e) {
        // Over the parent's own record the intent is best effort (WrittenPin.intentOnly); the
        // rename that follows meets any lasting failure of the directory itself.
        if (pin.intentOnly && refusedByStorage(e)) return;
        throw e;
      }
      const next: ActiveRecord = {
        ...pin.record,
        pinned_publishing: { version, inode, config_sha256: staged.configSha256 },
      };
      // fenced as the rename is: LOCK_LOST here publishes nothing, the pin undone as for any
      // failure before the rename. A pin over the parent's own plain record that the storage
      // refuses to rewrite goes on without its intent, as before such pins (WrittenPin.intentOnly).
      const written = await held
        .replaceIfExactly(pin.record, next, options.fence)
        .catch((e: unknown) => {
          if (pin?.intentOnly && refusedByStorage(e)) return false;
          throw e;
        });
      if (written) pin = { ...pin, record: next };
    };
    /** Pins if needed, renames, loads back and (holding the record's lock) activates. */
    const publishAndActivate = async (held?: HeldActiveRecord): Promise<void> => {
      if (held && pinning) {
        try {
          pin = await held.pin(
            servedNow,
            staged.tempName,
            conditional
              ? 'pinned before publishing a version activated only if this one is still active'
              : 'pinned before publishing an inactive version',
            // Over a plain record naming the parent too: the intent below needs a pin to go in.
            conditional ? options.ifActive : undefined,
          );
        } catch (e) {
          throw isActivationNotWritten(e) ? nothingPublished(e, undefined) : e;
        }
        // Nothing is published yet: a pin a crash may undo is not one to publish on (one over the
        // parent's own record may be: undone, it leaves that record).
        if (pin?.unsynced && !pin.intentOnly) {
          const { version } = pin.record;
          const failure = storageFailure(
            pin.unsynced,
            `cannot record version ${version} of "${name}" as active`,
            this.repository.root,
          );
          await unpin(held, failure);
          throw isActivationNotWritten(failure) ? nothingPublished(failure, version) : failure;
        }
      }
      let done: Awaited<ReturnType<HeldActiveRecord['publish']>>;
      try {
        done = held
          ? await held.publish(
              staged,
              options.fence,
              conditional ? (version) => recordIntent(held, version) : undefined,
              // A pin names the staged directory: removed once the pin is undone.
              pin !== undefined,
            )
          : await staged.publish(options.fence);
      } catch (e) {
        if (held) await unpin(held, e); // not renamed: nothing published, no pin needed
        throw e;
      }
      const { version } = done;
      // Renamed into place: from here on the version is published, whatever fails after.
      renamed = version;
      unsynced = done.unsynced;
      this.log.info(
        {
          model: name,
          version,
          ...(options.jobId !== undefined ? { job: options.jobId } : {}),
        },
        'version published',
      );
      let activated = false;
      try {
        const loaded = await this.loadVersion(name, version);
        if (!isAvailable(loaded)) {
          loadFailure = loaded.reason;
          // Deleted again in this hold (a tombstone keeps its number from being given out
          // again, as for any deletion), so a failed publish leaves no FAILED version behind for
          // every process to list; with it gone, so is the reason for a pin.
          if (held)
            removedAgain = await held.deleteVersion(version).then(
              () => 'it was deleted again',
              (d: unknown) =>
                `it could not be deleted again (${d instanceof Error ? d.message : String(d)})`,
            );
          throw new NormserveError(
            'REPOSITORY_ERROR',
            `published version ${version} does not load: ${loaded.reason}`,
          );
        }
        published = { version, loaded };
        result = { version, activated: activate };
        if (!held || !activate) return;
        try {
          if (conditional) {
            const written = await held.writeActiveIf(
              version,
              options.ifActive!,
              note,
              options.fence,
            );
            if (!written.written)
              result = { version, activated: false, activeFound: written.found };
            else {
              activated = true;
              unsynced ??= written.unsynced;
              this.warnIntentsReplaced(name, version, written.intentsReplaced);
            }
          } else {
            const written = await held.writeActive(version, note);
            unsynced ??= written.unsynced;
            this.warnIntentsReplaced(name, version, written.intentsReplaced);
          }
        } catch (e) {
          if (!isActivationNotWritten(e)) throw e;
          result = { version, activated: false, activationBusy: e };
        }
      } finally {
        if (held && !activated) {
          if (removedAgain === 'it was deleted again') await unpin(held, loadFailure);
          else await settlePin(held, version);
        }
      }
    };
    let locked = false;
    try {
      try {
        await this.repository.withActiveRecord(
          name,
          (held) => {
            locked = true;
            return publishAndActivate(held);
          },
          `cannot publish a version of "${name}"`,
          stopWaiting,
        );
      } catch (e) {
        if (locked || !isActivationNotWritten(e)) throw e;
        // Another writer keeps the record's lock, or its file cannot be written (a full disk).
        // Without a pin the version would be served as the highest: nothing is published then;
        // otherwise the work is published all the same, without the lock, and not activated.
        if (pinning) {
          const needed = await this.repository
            .pinFor(name, servedNow)
            .catch(() => ({ version: undefined }));
          if (needed !== undefined) throw nothingPublished(e, needed.version);
        }
        await publishAndActivate();
        if (activate) result = { version: published!.version, activated: false, activationBusy: e };
      }
    } catch (e) {
      // Not renamed: nothing published. A pin that could not be undone keeps its staged directory.
      if (renamed === undefined && !pinLeft) await staged.discard();
      published?.loaded.compiled.close();
      if (renamed !== undefined && loadFailure !== undefined) {
        // Without the hold (the unlocked path), deleted now, the record's lock free again.
        const version = renamed;
        const removed =
          removedAgain ??
          (await this.repository.deleteVersion(name, version).then(
            () => 'it was deleted again',
            (d: unknown) =>
              `it could not be deleted again (${d instanceof Error ? d.message : String(d)})`,
          ));
        await this.refreshModel(name).catch(() => undefined);
        throw new NormserveError(
          'REPOSITORY_ERROR',
          `published version ${version} does not load, ${removed}: ${loadFailure}`,
        );
      }
      throw e;
    }
    const { version, loaded } = published!;
    let outcome = result!;
    try {
      if (outcome.activationBusy) {
        // Published, only not activated: loaded and listed below like any other version.
        const found = await this.repository.readActive(name).catch(() => undefined);
        outcome = { ...outcome, activeFound: found?.version ?? null };
      }
      const snapshot = await this.refreshModel(name, loaded);
      // Without a record the highest version is served: an unconditional activation that could
      // not be recorded may be in effect all the same.
      if (outcome.activationBusy && snapshot.active === version)
        outcome = { version, activated: true };
      if (unsynced) {
        outcome.storageWarning = this.unsyncedWarning(
          name,
          version,
          unsynced,
          `version ${version} of "${name}" was published${outcome.activated ? ' and is active' : ''}`,
        );
      }
    } finally {
      // Released when the snapshot does not hold it: the refresh failed, or the version was
      // deleted (another replica's retention job) before it listed the versions (h294 3).
      if (this.models.get(name)?.versions.get(version) !== loaded) loaded.compiled.close();
      // The version is on disk whatever this process made of it: the others read it now.
      await this.announce(name);
    }
    return outcome;
  }

  /**
   * Says which pins still to be settled a pin made lasting dropped, more than MAX_PINS_SETTLED
   * (active-record.ts) down its chain: nothing settles them now (h282 R5).
   */
  private warnPinsDropped(name: string, dropped: DroppedPin[]): void {
    this.log.warn({ model: name, dropped }, droppedPinsWords(name, dropped));
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
