import { randomUUID } from 'node:crypto';
import { holdsBatchNormStatistics } from '../checkpoint/index.js';
import { NormserveError } from '../errors/index.js';
import type { EngineName } from '../inference/index.js';
import type { RecalibrationMode } from '../recalibration/index.js';
import {
  acquireModelLock,
  type LockOwner,
  storageFailure,
  UNKNOWN_LOCK_OWNER,
} from '../repository/index.js';
import { rejectionOnAbort } from './abort-rejection.js';
import type { TraceContext } from './job-record.js';
import { type Job, JobRegistry } from './job-registry.js';
import { type Log, silentLog } from './logger.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';
import { inputShapeOf } from './predict.js';
import type { RecalibrationOutcome } from './recalibration-outcome.js';
import { RecalibrationSession, refusesRequest, slices } from './recalibration-session.js';
import { RowBlockPool } from './row-block-pool.js';
import { type RowsReceived, uploadChunkRows } from './row-chunks.js';
import { SHUTTING_DOWN_RETRY_AFTER_SECONDS } from './serving-phase.js';
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

/** What `recalibrate` returns: the outcome, or the job that will record it. */
export type RecalibrationStarted =
  | { outcome: RecalibrationOutcome }
  | { job: Pick<Job, 'id' | 'state'> };

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
   * are closed and automatic recalibrations drained). A session still running — its upload's
   * connection closed by the client, its failure not yet settled (the HTTP server's close does
   * not wait for a request whose socket is gone) — is waited for too, so its record is written
   * `failed` before the timers stop and the process ends, never left `running` for another
   * process to settle as abandoned.
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.starting]);
    while (this.running.size > 0) await new Promise<void>((resolve) => this.onRelease.add(resolve));
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
   * already publishing finishes (the publish is atomic, and short), unless it is still waiting
   * for the active-version record's lock (another replica's writer holding it: up to
   * ACTIVE_RECORD_LOCK_WAIT_MS); that wait ends, and the job fails as above. Resolves when every
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
    return {
      ...rejectionOnAbort(signal, () => this.interruptionError(job)),
      happened: () => signal.aborted,
    };
  }

  /** Throws JOB_INTERRUPTED, worded for `job` as it stands, once `interrupt` was called. */
  throwIfInterrupted(job: Job): void {
    if (this.interruption.signal.aborted) throw this.interruptionError(job);
  }

  /** JOB_INTERRUPTED, worded for `job` as it stands. */
  private interruptionError(job: Job): NormserveError {
    const { rows, total_rows: total } = job.progress;
    return new NormserveError(
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
        await session.pushAll(slices(data, uploadChunkRows(session.width) * session.width));
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
    // Every row has arrived by now: too few for any recalibration (an empty body) is answered
    // TOO_FEW_SAMPLES as the synchronous form is, not accepted as a job that can only fail.
    if (
      options.acceptsJob &&
      (options.prefersJob || session.rows > asyncRows) &&
      !session.tooFewRows
    ) {
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
      read: (_parent, width) => slices(rows, uploadChunkRows(width) * width),
    });
    return outcome;
  }
}
