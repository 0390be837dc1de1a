import { createHash, type Hash, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { holdsBatchNormStatistics, networkFromCheckpoint } from '../checkpoint/index.js';
import {
  type ErrorCode,
  errorCatalogue,
  isNormserveError,
  NormserveError,
} from '../errors/index.js';
import type { EngineName } from '../inference/index.js';
import { cloneStateDict } from '../nn/index.js';
import {
  createRecalibrator,
  DEFAULT_BATCH_SIZE,
  DEFAULT_CHUNK_ROWS,
  DEFAULT_PRIOR_STRENGTH,
  type RecalibrationMode,
  type Recalibrator,
} from '../recalibration/index.js';
import {
  acquireModelLock,
  type HeldLock,
  type LockOwner,
  storageFailure,
  UNKNOWN_LOCK_OWNER,
} from '../repository/index.js';
import { nodeEngineOptions } from './engine-runtime.js';
import type { TraceContext } from './job-record.js';
import { type Job, JobRegistry, traceOf } from './job-registry.js';
import { type Log, silentLog } from './logger.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';
import { inputShapeOf } from './predict.js';
import { lineageOf } from './recalibration-lineage.js';
import type {
  NotActivated,
  NotActivatedCode,
  RecalibrationOutcome,
} from './recalibration-outcome.js';
import { RowBlockPool } from './row-block-pool.js';
import type { RowsReceived } from './row-chunks.js';
import { SHUTTING_DOWN_RETRY_AFTER_SECONDS } from './serving-phase.js';
import { SpillingRowStore } from './spilling-row-store.js';
import { storageWarningOf } from './storage-warning.js';
import { trafficParentRefusal } from './traffic-lineage.js';

export interface RecalibrationRequest {
  model: string;
  mode: RecalibrationMode;
  priorStrength?: number | undefined;
  batchSize?: number | undefined;
  /** Serve the new version at once (default true). */
  activate: boolean;
  note?: string | undefined;
  /** Where the rows came from when not from the request: `traffic` (AUTO_RECALIBRATE's sample). */
  source?: 'traffic' | undefined;
  /**
   * With `source: 'traffic'`: the version whose served traffic the rows are. Once the model's
   * lock is held and its versions read again, the recalibration is refused (PARENT_CHANGED) if
   * that version is no longer active or was already recalibrated from its traffic
   * (traffic-lineage.ts), so that its provenance always names that version as its parent.
   */
  trafficOf?: number | undefined;
  /** The request that asked for it (request id, W3C trace), recorded in the job and its logs. */
  trace?: TraceContext | undefined;
  /**
   * Rows parsed from text as they arrive (NDJSON): the statistics that overlap the upload run on
   * a helper thread while the event loop parses. Elsewhere (float32 bodies, rows in memory) the
   * event loop has little to do meanwhile, and the helper's thread start cost more CPU than the
   * overlap saved (bench/README.md, recalibration, fifth round).
   */
  parsedAsItArrives?: boolean | undefined;
}

/** What the active-version record named when a published version was left not activated. */
const activeNow = (activeFound: number | null): string =>
  activeFound === null
    ? 'the model has no usable active-version record'
    : `version ${activeFound} is active`;

/** The admin call that activates a published version (what an operator is told to send). */
export const activationCall = (model: string, version: number): string =>
  `POST /v1/models/${model}/versions/${version}:activate`;

export interface RecalibrationServiceOptions {
  maxSamples: number;
  /**
   * Bytes of rows an `exact`/`prior` recalibration keeps in memory; the rest is spilled to a
   * temporary file under `spillDirectory` (SpillingRowStore). Default: everything in memory.
   */
  rowMemoryBytes?: number | undefined;
  spillDirectory?: string | undefined;
  /** The engine that gathers the statistics (default: wasm, JS where wasm cannot run the plan). */
  engine?: EngineName | undefined;
  log?: Log;
  /**
   * Each recalibration's end: `client_error` for one its request ended (its rows refused, its
   * upload cut or dropped, a model busy or without BatchNorm: a 4xx code), answered at once or
   * recorded in its job alike, `failed` for one the server ended (one it could not start
   * included: a lock file the repository refuses, the shutdown).
   */
  onOutcome?: (
    model: string,
    mode: RecalibrationMode,
    outcome: 'succeeded' | 'failed' | 'client_error',
  ) => void;
  /**
   * A caller that accepts a job (`acceptsJob`) gets one, not the outcome, when more rows than this
   * arrived (RECALIBRATION_ASYNC_ROWS). Default: only when it prefers one.
   */
  asyncRows?: number | undefined;
  /**
   * The command-line program running this service (`recalibrate`), whose jobs live in its process
   * alone (`jobRecords: 'memory'`): recorded in the model's lock, so that the 409 another process
   * answers names the program's process (pid, host, since when), not a job id no server can find.
   */
  cli?: string | undefined;
  /**
   * What a recalibration awaits between slices of its work, on the event loop (default: one
   * `setImmediate` turn). A test holds a job mid-computation with it.
   */
  pause?: (() => Promise<void>) | undefined;
}

/**
 * The 409 of a model whose recalibration lock is held, saying who holds it: a job (`job_id`, and
 * `job`, its GET /v1/jobs/{id}, which every process sharing the repository answers), or a
 * command-line program (`holder`: the program, its host and pid, since when), whose job no server
 * knows, so no job id is named.
 */
export function recalibrationInProgress(
  model: string,
  holder: Pick<LockOwner, 'owner' | 'cli'> & Partial<LockOwner>,
): NormserveError {
  const retry = 'retry when it has finished';
  if (holder.owner === UNKNOWN_LOCK_OWNER)
    return new NormserveError(
      'RECALIBRATION_IN_PROGRESS',
      `model "${model}" is held by another process whose lock file cannot be read now; retry later`,
    );
  if (holder.cli === undefined) {
    const id = holder.owner;
    return new NormserveError(
      'RECALIBRATION_IN_PROGRESS',
      `model "${model}" is being recalibrated by job ${id}; ${retry}`,
      { extra: { job_id: id, job: `/v1/jobs/${id}` } },
    );
  }
  const { cli, host, pid, acquired_at: since } = holder;
  return new NormserveError(
    'RECALIBRATION_IN_PROGRESS',
    `model "${model}" is being recalibrated by the ${cli} CLI (pid ${pid} on host ${host}, since ${since}), not by a server job; ${retry}`,
    { extra: { holder: { cli, host, pid, since } } },
  );
}

/** Where the rows of a recalibration come from. */
export type RecalibrationRows =
  | {
      /**
       * Rows not yet checked (a JSON body's `instances`): checked against the active version
       * before the model is locked, so a bad request never makes a good one wait, and again
       * against the version the recalibration starts from (it may be newer). `path` names them
       * in errors.
       */
      instances: readonly unknown[];
      path: string;
    }
  | {
      /**
       * Rows read once the model is locked (an upload, read as it arrives; rows in memory): whole
       * rows of the `parent` version's input, in chunks (RecalibrationSession.pushAll).
       */
      read: (
        parent: AvailableVersion,
        width: number,
        /** The reader counts the rows it has read here, for a failure's message (readFailed). */
        received: RowsReceived,
      ) => AsyncIterable<Float32Array> | Iterable<Float32Array>;
    };

export interface RecalibrateOptions {
  /**
   * The caller takes a job in place of the outcome (an HTTP request, answered 202): it gets one,
   * once every row is in, when it prefers one (`prefersJob`: Prefer: respond-async) or more rows
   * than `asyncRows` arrived; the job then records the outcome.
   */
  acceptsJob?: boolean;
  prefersJob?: boolean;
  /**
   * The error that ended reading the rows, as it should be recorded and thrown (the route names a
   * dropped upload that REQUEST_TIMEOUT_MS cut); `rowsRead` had been read (RowsReceived).
   */
  readFailed?: (error: unknown, rowsRead: number) => unknown;
  /**
   * The caller answers a refusal of its request itself (an HTTP request: its 4xx problem and its
   * request line, which docs/errors.md makes a client error's only line). A recalibration that
   * ends, before any job is handed out, with a client error (a 4xx of the catalogue: a bad row or
   * line, too few or too many rows, an upload dropped or cut) is then a refused request, not a
   * failed recalibration: its job record says `failed` as always, but no `recalibration failed`
   * line (which would quote the upload's cell) is logged, and `normserve_recalibrations_total`
   * counts it `client_error`, as it counts a job's. A failure for a server reason (storage, a
   * lost lock, a fault) stays a failed recalibration, as does every failure of a job handed out
   * (its record is all its client sees) and of a caller without a request (AUTO_RECALIBRATE).
   */
  answersRefusals?: boolean;
  /**
   * Aborts when the rows will not arrive whole (an HTTP upload cut at REQUEST_TIMEOUT_MS): the
   * wait for the next chunk ends with the signal's reason, as a read that failed, and the job
   * fails and gives its lock back before `recalibrate` rejects (the caller answers after that).
   */
  receiving?: AbortSignal;
}

/** Whether `error` refuses the request that asked for the recalibration (a 4xx of the catalogue). */
const refusesRequest = (error: unknown): boolean => isNormserveError(error) && error.status < 500;

/** What `recalibrate` returns: the outcome, or the job that will record it. */
export type RecalibrationStarted =
  | { outcome: RecalibrationOutcome }
  | { job: Pick<Job, 'id' | 'state'> };

/** How often a running upload's count of rows read is copied into its job's progress. */
const RECEIVED_PROGRESS_MS = 250;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A promise that rejects with `signal`'s reason once it aborts (never without a signal). */
function abortedWith(signal: AbortSignal | undefined): {
  rejects: Promise<never>;
  dispose: () => void;
} {
  let onAbort = () => {};
  const rejects = new Promise<never>((_, reject) => {
    if (signal === undefined) return;
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  rejects.catch(() => undefined);
  return { rejects, dispose: () => signal?.removeEventListener('abort', onAbort) };
}

/**
 * An error of createRecalibrator placed at the request's field names: it names the option it
 * checks against the network (a `running` batch size of 1 where one row gives a BatchNorm one
 * value per channel) `batchSize`; a client sent `batch_size`.
 */
function requestFieldNames(e: unknown): unknown {
  if (!(e instanceof NormserveError) || !e.errors.some((x) => x.path === 'batchSize')) return e;
  return new NormserveError(e.code, e.message, {
    errors: e.errors.map((x) => (x.path === 'batchSize' ? { ...x, path: 'batch_size' } : x)),
  });
}

/**
 * One recalibration in progress: rows are pushed as they arrive (hashed, validated and, where
 * the mode allows, folded into the statistics at once), then `complete` computes the statistics
 * on a private copy of the parent version's network and publishes a new version. The served
 * network is never touched, so predictions go on during the whole recalibration.
 */
export class RecalibrationSession {
  readonly job: Job;
  readonly parent: AvailableVersion;
  readonly request: RecalibrationRequest;
  private readonly recalibrator: Recalibrator;
  /** The private copy of the parent's network that the recalibrator updates. */
  private readonly network: ReturnType<typeof networkFromCheckpoint>;
  private readonly hash: Hash = createHash('sha256');
  private readonly started = performance.now();
  private readonly service: RecalibrationService;
  private settled = false;
  /**
   * What the upload's reader has read, the chunk it is still filling included (pushAll's
   * `received`): the receiving phase's `progress.rows` counts these, not only the chunks taken.
   */
  private read: RowsReceived | undefined;

  private readonly lock: HeldLock;

  constructor(
    service: RecalibrationService,
    parent: AvailableVersion,
    request: RecalibrationRequest,
    job: Job,
    lock: HeldLock,
  ) {
    this.service = service;
    this.lock = lock;
    this.parent = parent;
    this.request = request;
    this.job = job;
    const { config, state } = parent.checkpoint;
    const network = networkFromCheckpoint(config, cloneStateDict(state));
    this.recalibrator = createRecalibrator(network, config.input_transform, config.input_shape, {
      mode: request.mode,
      ...(request.priorStrength !== undefined ? { priorStrength: request.priorStrength } : {}),
      ...(request.batchSize !== undefined ? { batchSize: request.batchSize } : {}),
      maxSamples: service.options.maxSamples,
      // Between slices of work: where the shutdown's interruption takes effect (`interrupt`).
      pause: async () => {
        await (service.options.pause ?? nextTurn)();
        service.throwIfInterrupted(job);
      },
      // With parsedAsItArrives, the statistics that overlap the upload (the first BatchNorm's
      // plan; recalibration/README.md) run on one helper thread, a pass at a time
      // (accumulateAsync), while the event loop goes on parsing the upload and answering
      // predictions: one thread computing, this one doing the I/O.
      engine: nodeEngineOptions({
        engine: service.options.engine,
        threads: request.parsedAsItArrives ? 2 : 1,
        onHelperError: (e) =>
          service.log.warn({ err: e, job: job.id }, 'a recalibration helper thread failed'),
      }),
      // A traffic sample never goes to disk (it leaves the process only as its hash, issue 12):
      // it is bounded by TRAFFIC_SAMPLE_BYTES and stays in memory whatever the spill budget.
      ...(service.options.rowMemoryBytes !== undefined &&
        request.source !== 'traffic' && {
          rowStore: (width: number, blockRows: number) =>
            new SpillingRowStore(
              width,
              blockRows,
              service.options.rowMemoryBytes!,
              service.options.spillDirectory ?? tmpdir(),
              (e) =>
                service.log.warn(
                  { err: e, job: job.id },
                  'no temporary directory for the recalibration rows: they are kept in memory',
                ),
              service.rowBlocks,
            ),
        }),
      onProgress: (p) =>
        service.jobs.update(job, {
          phase:
            p.phase === 'receiving'
              ? 'receiving'
              : `statistics${p.path !== undefined ? ` (layer ${p.path})` : ''}`,
          progress:
            p.phase === 'receiving'
              ? { rows: this.rowsReceived(p.rows), total_rows: null }
              : { rows: p.rows, total_rows: p.totalRows },
        }),
    });
    this.network = network;
  }

  /** Values per row (the model's input width: the product of its input shape). */
  get width(): number {
    return this.parent.compiled.inputWidth;
  }

  get rows(): number {
    return this.recalibrator.rows;
  }

  /** Rows received: `taken` or, while a reader fills its next chunk, the rows it has read. */
  private rowsReceived(taken: number): number {
    return Math.max(taken, this.read?.rows ?? 0);
  }

  /**
   * Whole rows [k, width] of raw features, unchanged until the promise settles. A rejected chunk
   * ends the upload: every later push rejects with the same error, and the caller fails the
   * session (the chunk is hashed while its statistics run, before they can reject it).
   */
  async push(chunk: Float32Array): Promise<void> {
    if (this.rejected) throw this.rejected.error;
    const taking = this.recalibrator.push(chunk);
    // Hashed here while a helper thread computes the chunk's first statistics, if it has one.
    this.hash.update(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    try {
      await taking;
    } catch (error) {
      this.rejected = { error };
      throw error;
    }
    this.service.jobs.update(this.job, {
      progress: { rows: this.rowsReceived(this.recalibrator.rows), total_rows: null },
    });
  }

  private rejected: { error: unknown } | undefined;

  /**
   * Pushes every chunk, reading the next one while the last is taken (with parsedAsItArrives its
   * statistics run on a helper thread, so parsing the upload and computing overlap). A yielded chunk must stay
   * unchanged until the one after it has been yielded and the next asked for (upload-readers.ts
   * fill two chunks in turn). A refused chunk rejects at once, not once the next chunk has been
   * read (a slow client would hold its 400 and the model's lock); its error wins over a read error
   * that follows it. `received`, the reader's count of rows read (RowsReceived), shows in the
   * job's progress every RECEIVED_PROGRESS_MS while the upload runs: its chunks are handed on
   * only when full (up to 4,096 rows), and a slow upload's job would read 0 rows until then.
   */
  async pushAll(
    chunks: AsyncIterable<Float32Array> | Iterable<Float32Array>,
    receiving?: AbortSignal,
    received?: RowsReceived,
  ): Promise<void> {
    this.read = received;
    const counting = received
      ? setInterval(() => {
          const rows = this.rowsReceived(this.recalibrator.rows);
          if (this.job.phase === 'receiving' && rows > this.job.progress.rows)
            this.service.jobs.update(this.job, { progress: { rows, total_rows: null } });
        }, RECEIVED_PROGRESS_MS)
      : undefined;
    counting?.unref();
    const it: AsyncIterator<Float32Array> | Iterator<Float32Array> =
      Symbol.asyncIterator in chunks
        ? chunks[Symbol.asyncIterator]()
        : (chunks as Iterable<Float32Array>)[Symbol.iterator]();
    let taking: Promise<void> | undefined;
    let refused: Promise<never> | undefined;
    // The shutdown's interruption ends an upload that waits for its next chunk, too.
    const interruption = this.service.interruptionOf(this.job);
    // So does the end of the upload's reception (RecalibrateOptions.receiving).
    const cut = abortedWith(receiving);
    try {
      for (;;) {
        const next = Promise.resolve(it.next());
        // A read abandoned for a refused chunk may still fail later: nobody awaits it then.
        next.catch(() => undefined);
        // While a push runs, a rejection of it ends the upload before the next chunk arrives.
        const step = await Promise.race(
          refused
            ? [next, refused, interruption.rejects, cut.rejects]
            : [next, interruption.rejects, cut.rejects],
        );
        if (step.done) break;
        await taking;
        taking = this.push(step.value);
        refused = taking.then(() => new Promise<never>(() => undefined));
        // Awaited on the next round or below; a rejection must not go unhandled meanwhile.
        refused.catch(() => undefined);
      }
      await taking;
    } catch (e) {
      // A read error after a refused chunk: the chunk's error is the one to report.
      await taking?.catch(() => undefined);
      if (this.rejected || interruption.happened() || receiving?.aborted) {
        // The read in flight, if any, is abandoned: its reader ends when it next wakes.
        void Promise.resolve(it.return?.()).catch(() => undefined);
        throw this.rejected?.error ?? e;
      }
      throw e;
    } finally {
      clearInterval(counting);
      interruption.dispose();
      cut.dispose();
    }
  }

  /**
   * Computes the statistics, publishes the new version (activating it if asked), settles the job.
   * `answersRefusals`: the caller answers a client error itself (RecalibrateOptions).
   */
  complete(answersRefusals = false): Promise<RecalibrationOutcome> {
    return this.service.track(this.run(answersRefusals));
  }

  private async run(answersRefusals: boolean): Promise<RecalibrationOutcome> {
    try {
      const result = await this.recalibrator.finish();
      this.service.jobs.update(this.job, { phase: 'publishing' });
      // On disk before anything of the version is: a process that finds this job abandoned
      // says "nothing was published" only for an earlier phase (abandonedMessage). Queued behind
      // the progress records, the phase reached the disk after the version's rename, and a job
      // killed in between was reported as having published nothing, its version served.
      await this.service.jobs.flush();
      const dataSha256 = this.hash.digest('hex');
      const parentConfig = this.parent.checkpoint.config;
      const { mode, priorStrength, batchSize, note, source } = this.request;
      const parentVersion = this.parent.version;
      // The parent by reference (its files' digests, null for files gone: a parent deleted
      // meanwhile), never by embedding its provenance: a chain of recalibrations would grow
      // every config.json with its generation (recalibration-lineage.ts).
      const parentFiles = await this.service.registry.repository
        .versionDigests(parentConfig.name, parentVersion)
        .catch(() => ({ config_sha256: null, weights_sha256: null }));
      const provenance = {
        kind: 'recalibration',
        ...(source !== undefined ? { source } : {}),
        parent_version: parentVersion,
        parent_config_sha256: parentFiles.config_sha256,
        parent_weights_sha256: parentFiles.weights_sha256,
        mode,
        ...(mode === 'prior' ? { prior_strength: priorStrength ?? DEFAULT_PRIOR_STRENGTH } : {}),
        ...(mode === 'running'
          ? {
              batch_size: batchSize ?? DEFAULT_BATCH_SIZE,
              batches: result.batches ?? null,
              skipped: result.skipped ?? 0,
            }
          : {}),
        samples: result.samples,
        data_sha256: dataSha256,
        created_at: new Date().toISOString(),
        note: note ?? null,
        ...lineageOf(parentVersion, parentConfig.provenance),
      };
      const published = await this.service.registry.publish(
        {
          config: { ...parentConfig, provenance },
          state: this.network.stateDict(),
          metrics: { format: 'normserve.recalibration/v1', ...provenance, layers: result.layers },
        },
        this.request.activate,
        note ??
          `recalibrated from version ${this.parent.version} (${mode}, ${result.samples} samples)`,
        // Activated only if the parent is still the active version: an operator who activated
        // another one while this job ran (a rollback) is not overruled by the job. Published and
        // activated only while this job still holds the model's lock (its fencing check): a job
        // paused past its lease, whose lock another process broke, writes nothing.
        { ifActive: this.parent.version, fence: this.lock.assertHeld, jobId: this.job.id },
      );
      const { version, activated } = published;
      const notActivated =
        published.activationBusy !== undefined
          ? this.activationBusy(version, published.activeFound ?? null, published.activationBusy)
          : published.activeFound !== undefined
            ? await this.notActivated(version, published.activeFound)
            : undefined;
      const outcome: RecalibrationOutcome = {
        model: parentConfig.name,
        version,
        parent_version: this.parent.version,
        mode,
        samples: result.samples,
        activated,
        duration_ms: Math.round((performance.now() - this.started) * 1000) / 1000,
        data_sha256: dataSha256,
        layers: result.layers,
        ...(result.batches !== undefined ? { batches: result.batches } : {}),
        ...(mode === 'running' ? { skipped: result.skipped ?? 0 } : {}),
        job_id: this.job.id,
        ...(notActivated !== undefined ? { not_activated: notActivated } : {}),
        ...(published.storageWarning
          ? { warning: storageWarningOf(published.storageWarning) }
          : {}),
      };
      // The job's final state is written under the lock too: a job whose lock was broken after
      // it published (its process paused past the lease) may have been settled by another process
      // (JOB_ABANDONED), and is not rewritten as succeeded.
      await this.lock.assertHeld().catch((e: unknown) => {
        if (!isNormserveError(e) || e.code !== 'LOCK_LOST') throw e;
        throw new NormserveError(
          'LOCK_LOST',
          `${e.message}: version ${version} had been published${activated ? ' and activated' : ''} before, but this job is not recorded as succeeded`,
          { cause: e },
        );
      });
      await this.settle('succeeded', { result: outcome, phase: 'done' });
      return outcome;
    } catch (e) {
      await this.fail(e, answersRefusals && refusesRequest(e));
      throw e;
    }
  }

  /**
   * Why the published `version` was not activated, `activeFound` being what the active-version
   * record named instead; logged as a warning, since the caller asked for an activation.
   */
  private async notActivated(version: number, activeFound: number | null): Promise<NotActivated> {
    const { name } = this.parent;
    const parent = this.parent.version;
    const deleted = await this.service.registry.repository
      .deletedVersions(name)
      .then((versions) => versions.includes(parent))
      .catch(() => false);
    const notActivated: NotActivated = {
      code: deleted ? 'PARENT_DELETED' : 'PARENT_NOT_ACTIVE',
      message: `version ${version} was published but not activated: it derives from version ${parent}, which ${deleted ? 'was deleted' : 'is no longer the active version'} while the recalibration ran, and ${activeNow(activeFound)}: a recalibration never overrules an activation made while it ran. Activate version ${version} to serve it.`,
      active_version: activeFound,
    };
    this.warnNotActivated(
      notActivated,
      version,
      {},
      'recalibration published without activating: the active version changed while it ran',
    );
    return notActivated;
  }

  /** The warning of a published version left not activated, with the job's ids and trace. */
  private warnNotActivated(
    notActivated: NotActivated,
    version: number,
    extra: Record<string, unknown>,
    message: string,
  ): void {
    this.service.log.warn(
      {
        model: this.parent.name,
        job: this.job.id,
        ...traceOf(this.job),
        version,
        parent: this.parent.version,
        active: notActivated.active_version,
        code: notActivated.code,
        ...extra,
      },
      message,
    );
  }

  /**
   * The published `version` was not activated because the active-version record's lock stayed
   * held (`busy`, ACTIVE_RECORD_BUSY) or the storage failed writing it (STORAGE_FULL,
   * STORAGE_UNAVAILABLE): the job still succeeds (its version is on disk and listed), and the
   * operator is told, by the outcome and a warning, how to activate it.
   */
  private activationBusy(
    version: number,
    activeFound: number | null,
    busy: NormserveError,
  ): NotActivated {
    const { name } = this.parent;
    const call = activationCall(name, version);
    const notActivated: NotActivated = {
      code: busy.code as NotActivatedCode,
      message: `version ${version} was published but not activated: ${busy.message}; ${activeNow(activeFound)}. Activate version ${version} to serve it (${call}).`,
      active_version: activeFound,
    };
    this.warnNotActivated(
      notActivated,
      version,
      { reason: busy.message, activate: call },
      busy.code === 'ACTIVE_RECORD_BUSY'
        ? 'recalibration published without activating: the active-version record stayed locked'
        : 'recalibration published without activating: the active-version record could not be written',
    );
    return notActivated;
  }

  /**
   * Ends the session with an error (a bad row, a dropped upload), releasing the model. `refused`:
   * the error refuses a request that answers it itself (RecalibrateOptions.answersRefusals), so it
   * is recorded in the job alone, neither logged nor counted as a failed recalibration.
   */
  async fail(error: unknown, refused = false): Promise<void> {
    if (this.settled) return;
    // Frees the stored rows and the executors now rather than when the session is collected.
    await this.recalibrator.abort().catch((e: unknown) => {
      this.service.log.warn({ err: e, job: this.job.id }, 'releasing the recalibration failed');
    });
    const info = isNormserveError(error)
      ? {
          code: error.code,
          message: error.message,
          ...(error.errors.length > 0 ? { errors: [...error.errors] } : {}),
        }
      : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
    await this.settle('failed', { error: info, phase: 'failed' }, refused);
  }

  private async settle(
    state: 'succeeded' | 'failed',
    change: Partial<Job>,
    refused = false,
  ): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    // How far it got, before the record says `failed`.
    const reached = { phase: this.job.phase, progress: { ...this.job.progress } };
    // The model lock first: a client that sees the job settled may start the next recalibration at
    // once, and must not get a 409 from the lock this job still held (the record said `succeeded`
    // while the lock file was being removed).
    try {
      await this.lock.release();
    } catch (e) {
      this.service.log.error(
        { err: e, model: this.parent.name },
        'releasing the model lock failed',
      );
    }
    this.service.jobs.update(this.job, { ...change, state });
    this.service.release(this);
    // Counted by cause, whether the request was answered with it (`refused`) or its job records
    // it: a job refused for its rows counted `failed` while the same refusal answered at once
    // counted nothing (ops review of 2026-12-04, minor observation).
    const code = change.error?.code;
    const clientError =
      state === 'failed' &&
      code !== undefined &&
      code in errorCatalogue &&
      errorCatalogue[code as ErrorCode].status < 500;
    this.service.options.onOutcome?.(
      this.parent.name,
      this.request.mode,
      clientError ? 'client_error' : state,
    );
    // A refusal answered to its request is logged by that request's line.
    if (refused) return;
    const log = this.service.log;
    const context = { model: this.parent.name, job: this.job.id, ...traceOf(this.job) };
    if (state === 'succeeded')
      log.info({ ...context, result: change.result }, 'recalibration published');
    else if (clientError)
      log.info({ ...context, error: change.error }, 'recalibration refused: a client error');
    else if (change.error?.code === 'JOB_INTERRUPTED')
      log.warn(
        { ...context, ...reached, error: change.error },
        'recalibration job interrupted by shutdown: nothing published',
      );
    else log.warn({ ...context, error: change.error }, 'recalibration failed');
  }
}

/** SHUTTING_DOWN for a recalibration asked for once the shutdown began: no job, no lock. */
function notStarted(model: string): NormserveError {
  return new NormserveError(
    'SHUTTING_DOWN',
    `the server is shutting down: a recalibration of "${model}" is not started; retry on another instance`,
    { retryAfterSeconds: SHUTTING_DOWN_RETRY_AFTER_SECONDS },
  );
}

/**
 * The recalibration use case: at most one recalibration per model at a time (a second one gets
 * 409 naming the running job, or the CLI process running one: recalibrationInProgress), each on a private copy of the version that was active when it
 * began, published as a new version through the registry (atomic, then activated if asked).
 */
export class RecalibrationService {
  readonly registry: ModelRegistry;
  readonly jobs: JobRegistry;
  readonly options: RecalibrationServiceOptions;
  readonly log: Log;
  /** The in-memory row blocks of finished recalibrations, reused by the next (RowBlockPool). */
  readonly rowBlocks: RowBlockPool;
  private readonly running = new Map<string, RecalibrationSession>();
  private readonly completing = new Set<Promise<unknown>>();
  /** From the shutdown signal on (`stopAccepting`): a new recalibration is refused. */
  private accepting = true;
  /** Waiting for a session to settle (`interrupt`). */
  private readonly onRelease = new Set<() => void>();
  /** Aborted by `interrupt`: the shutdown budget ran out. */
  private readonly interruption = new AbortController();
  /** Recalibrations past `begin`'s check of `accepting` without their session yet (the lock). */
  private readonly starting = new Set<Promise<RecalibrationSession>>();

  constructor(registry: ModelRegistry, jobs: JobRegistry, options: RecalibrationServiceOptions) {
    this.registry = registry;
    this.jobs = jobs;
    this.options = options;
    this.log = options.log ?? silentLog;
    this.rowBlocks = new RowBlockPool(options.rowMemoryBytes ?? 0);
  }

  /**
   * The recalibrations of a repository's models, the one way a server and the offline CLI build
   * the service. Job records go to the repository's `.jobs/` (JobRegistry.forRepository), where
   * any process serving it answers GET /v1/jobs/{id} and settles a job whose process died; with
   * `jobRecords: 'memory'` (the offline CLI, which prints its outcome and whose failures leave the
   * repository as they found it) they stay in this process, which `cli` then names in the model's
   * lock for the 409s of the others.
   */
  static forRepository(
    registry: ModelRegistry,
    {
      jobRecords = 'repository',
      ...options
    }: RecalibrationServiceOptions &
      ({ jobRecords?: 'repository' } | { jobRecords: 'memory'; cli: string }),
  ): RecalibrationService {
    const log = options.log ? { log: options.log } : {};
    const jobs =
      jobRecords === 'repository'
        ? JobRegistry.forRepository(registry.repository, log)
        : new JobRegistry(log);
    return new RecalibrationService(registry, jobs, options);
  }

  /**
   * A server's housekeeping: settles jobs abandoned by dead processes and deletes expired records,
   * now and hourly (JobRegistry.startSweeping), until `close`.
   */
  startSweeping(): Promise<void> {
    return this.jobs.startSweeping();
  }

  /**
   * Shutdown: recalibrations being computed publish (or fail), and their job records reach the
   * disk, then the job timers stop. Call once nothing starts recalibrations any more (the routes
   * are closed and automatic recalibrations drained).
   */
  async close(): Promise<void> {
    await this.drain();
    await this.jobs.flush();
    this.jobs.close();
  }

  /**
   * The server is shutting down (SIGTERM): a recalibration asked for from now on is refused with
   * SHUTTING_DOWN (503, Retry-After), before it locks the model or makes a job; running ones go on.
   */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * The shutdown budget ran out: every recalibration not yet publishing stops at its next pause
   * between slices of work (or, uploading, at once) and fails with JOB_INTERRUPTED, its lock
   * released, its record written and a warning logged that names it and how far it got. One
   * already publishing finishes (the publish is atomic, and short). Resolves when every
   * recalibration running has settled and its record is on disk, with the jobs it interrupted
   * (id, model and the phase they were in).
   */
  async interrupt(): Promise<Pick<Job, 'id' | 'model' | 'phase'>[]> {
    this.stopAccepting();
    const running = [...this.running.values()].map(({ job }) => ({ job, phase: job.phase }));
    this.interruption.abort();
    // One still waiting for its lock gives it back and is not started (startSession).
    await Promise.allSettled([...this.starting]);
    while (this.running.size > 0) await new Promise<void>((resolve) => this.onRelease.add(resolve));
    await this.drain();
    await this.jobs.flush();
    return running
      .filter(({ job }) => job.error?.code === 'JOB_INTERRUPTED')
      .map(({ job, phase }) => ({ id: job.id, model: job.model, phase }));
  }

  /** The jobs of the recalibrations running in this process. */
  runningJobs(): Pick<Job, 'id' | 'model' | 'phase'>[] {
    return [...this.running.values()].map(({ job }) => ({
      id: job.id,
      model: job.model,
      phase: job.phase,
    }));
  }

  /**
   * For a wait that `interrupt` must end (an upload's next chunk): `rejects` with JOB_INTERRUPTED
   * once it is called; `dispose` when the wait is over, so that nothing keeps the job.
   */
  interruptionOf(job: Job): {
    rejects: Promise<never>;
    happened: () => boolean;
    dispose: () => void;
  } {
    const { signal } = this.interruption;
    let onAbort = () => {};
    const rejects = new Promise<never>((_, reject) => {
      onAbort = () => {
        try {
          this.throwIfInterrupted(job);
        } catch (e) {
          reject(e);
        }
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    rejects.catch(() => undefined);
    return {
      rejects,
      happened: () => signal.aborted,
      dispose: () => signal.removeEventListener('abort', onAbort),
    };
  }

  /** Throws JOB_INTERRUPTED, worded for `job` as it stands, once `interrupt` was called. */
  throwIfInterrupted(job: Job): void {
    if (!this.interruption.signal.aborted) return;
    const { rows, total_rows: total } = job.progress;
    throw new NormserveError(
      'JOB_INTERRUPTED',
      `job ${job.id} was interrupted by the server's shutdown in phase "${job.phase}" after ${rows}${total !== null ? ` of ${total}` : ''} rows: SHUTDOWN_TIMEOUT_MS ran out before it finished; nothing was published; the model lock is released, so a new recalibration may start`,
      { retryAfterSeconds: SHUTTING_DOWN_RETRY_AFTER_SECONDS },
    );
  }

  /**
   * Starts a recalibration of the model's active version. The model's lock is a file in the
   * repository (acquireModelLock), so the 409 holds across workers and replicas too.
   */
  async begin(request: RecalibrationRequest): Promise<RecalibrationSession> {
    if (!this.accepting) throw notStarted(request.model);
    // Until it has its session (waiting for the model's lock), `interrupt` waits for it too.
    const started = this.startSession(request);
    this.starting.add(started);
    try {
      return await started;
    } finally {
      this.starting.delete(started);
    }
  }

  private async startSession(request: RecalibrationRequest): Promise<RecalibrationSession> {
    const parent = this.registry.resolve(request.model);
    if (!holdsBatchNormStatistics(parent.checkpoint.config.layers)) {
      throw new NormserveError(
        'NOT_RECALIBRATABLE',
        `model "${request.model}" has no BatchNorm layer: there are no statistics to recalibrate`,
      );
    }
    const { cli } = this.options;
    // A session of this process: its job, or (a CLI's) this process.
    const busy = (session: RecalibrationSession): NormserveError =>
      recalibrationInProgress(request.model, {
        owner: session.job.id,
        ...(cli !== undefined
          ? { cli, ...session.job.owner, acquired_at: session.job.created_at }
          : {}),
      });
    const local = this.running.get(request.model);
    if (local) throw busy(local);
    const jobId = randomUUID();
    const lock = await acquireModelLock(
      this.registry.repository.modelPath(request.model),
      jobId,
      cli !== undefined ? { cli } : {},
    ).catch((e: unknown) => {
      // The lock is a file of the repository: a read-only or full one refuses it.
      throw storageFailure(
        e,
        `cannot start a recalibration of "${request.model}" (its lock file)`,
        this.registry.repository.root,
        this.registry.repository.modelPath(request.model),
      );
    });
    if ('heldBy' in lock) throw recalibrationInProgress(request.model, lock.heldBy);
    const raced = this.running.get(request.model);
    if (raced) {
      await lock.release();
      throw busy(raced);
    }
    // With the lock held, read the model again from the repository: another worker or replica
    // may have published or activated a version since this process last polled, and the parent
    // must be the version that is active now.
    let current: AvailableVersion;
    try {
      await this.registry.refreshModel(request.model);
      current = this.registry.resolve(request.model);
    } catch (e) {
      await lock.release();
      throw e;
    }
    const refusal =
      request.trafficOf !== undefined
        ? trafficParentRefusal(this.registry.get(request.model), request.trafficOf)
        : undefined;
    if (refusal !== undefined) {
      await lock.release();
      throw new NormserveError('PARENT_CHANGED', refusal);
    }
    // The shutdown's budget ran out while this one waited for its lock: it never starts.
    if (this.interruption.signal.aborted) {
      await lock.release();
      throw notStarted(request.model);
    }
    const job = this.jobs.create('recalibration', request.model, jobId, request.trace);
    try {
      const session = new RecalibrationSession(this, current, request, job, lock);
      this.running.set(request.model, session);
      return session;
    } catch (e) {
      await lock.release();
      const error = requestFieldNames(e);
      this.jobs.update(job, {
        state: 'failed',
        phase: 'failed',
        error:
          error instanceof NormserveError
            ? { code: error.code, message: error.message }
            : { code: 'INTERNAL', message: String(error) },
      });
      throw error;
    }
  }

  /** Remembers a completion in progress until it settles, for `drain`. */
  track<T>(completion: Promise<T>): Promise<T> {
    this.completing.add(completion);
    const forget = () => this.completing.delete(completion);
    completion.then(forget, forget);
    return completion;
  }

  /** Resolves when every recalibration being completed has published or failed (shutdown). */
  async drain(): Promise<void> {
    while (this.completing.size > 0) await Promise.allSettled([...this.completing]);
  }

  /** The running session of a model, if any. */
  runningFor(model: string): RecalibrationSession | undefined {
    return this.running.get(model);
  }

  /** Called by a session when it settles. */
  release(session: RecalibrationSession): void {
    if (this.running.get(session.parent.name) === session) this.running.delete(session.parent.name);
    for (const resolve of this.onRelease) resolve();
    this.onRelease.clear();
  }

  /**
   * The recalibration use case, whoever asks (the admin route, AUTO_RECALIBRATE, the offline CLI):
   * begins a session (the model's lock and job), pushes every row (failing the session, and so
   * the job, with the error that ended them), then publishes and returns the outcome, or, for a
   * caller that accepts one, returns the job that will record it.
   */
  recalibrate(
    request: RecalibrationRequest,
    rows: RecalibrationRows,
  ): Promise<{ outcome: RecalibrationOutcome }>;
  recalibrate(
    request: RecalibrationRequest,
    rows: RecalibrationRows,
    options: RecalibrateOptions,
  ): Promise<RecalibrationStarted>;
  async recalibrate(
    request: RecalibrationRequest,
    rows: RecalibrationRows,
    options: RecalibrateOptions = {},
  ): Promise<RecalibrationStarted> {
    let session: RecalibrationSession;
    try {
      if ('instances' in rows)
        inputShapeOf(this.registry.resolve(request.model)).readInstances(rows.instances, rows.path);
      session = await this.begin(request);
    } catch (e) {
      // Counted as one that started and ended so: a JSON body's rows are checked before the
      // model's lock is taken, an upload's after, and a lock file the repository refuses is a
      // failure of the server's (docs/observability.md, normserve_recalibrations_total). A
      // caller without a request (AUTO_RECALIBRATE) finding the model busy refuses nobody. A
      // model the server does not have is no series: a label from the URL would let a client
      // make series without end.
      if (this.registry.has(request.model)) {
        if (!refusesRequest(e)) this.options.onOutcome?.(request.model, request.mode, 'failed');
        else if (options.answersRefusals)
          this.options.onOutcome?.(request.model, request.mode, 'client_error');
      }
      throw e;
    }
    const received: RowsReceived = { rows: 0 };
    try {
      if ('instances' in rows) {
        const data = inputShapeOf(session.parent).readInstances(rows.instances, rows.path);
        await session.pushAll(slices(data, 1024 * session.width));
      } else {
        await session.pushAll(
          rows.read(session.parent, session.width, received),
          options.receiving,
          received,
        );
      }
    } catch (e) {
      const rowsRead = Math.max(session.rows, received.rows);
      const error = options.readFailed ? options.readFailed(e, rowsRead) : e;
      await session.fail(error, options.answersRefusals === true && refusesRequest(error));
      throw error;
    }
    const asyncRows = this.options.asyncRows ?? Number.POSITIVE_INFINITY;
    if (options.acceptsJob && (options.prefersJob || session.rows > asyncRows)) {
      session.complete().catch(() => undefined); // the job records the outcome
      return { job: { id: session.job.id, state: session.job.state } };
    }
    return { outcome: await session.complete(options.answersRefusals) };
  }

  /** Recalibrates from rows already in memory (the offline CLI, AUTO_RECALIBRATE's sample). */
  async recalibrateRows(
    request: RecalibrationRequest,
    rows: Float32Array,
  ): Promise<RecalibrationOutcome> {
    const { outcome } = await this.recalibrate(request, {
      read: (_parent, width) => slices(rows, DEFAULT_CHUNK_ROWS * width),
    });
    return outcome;
  }
}

/** `rows` in consecutive views of at most `step` values. */
export function* slices(rows: Float32Array, step: number): Generator<Float32Array> {
  for (let i = 0; i < rows.length; i += step)
    yield rows.subarray(i, Math.min(rows.length, i + step));
}
