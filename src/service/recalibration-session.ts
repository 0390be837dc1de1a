import { createHash, type Hash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { networkFromCheckpoint } from '../checkpoint/index.js';
import {
  type ErrorCode,
  errorCatalogue,
  isNormserveError,
  NormserveError,
} from '../errors/index.js';
import { cloneStateDict } from '../nn/index.js';
import {
  createRecalibrator,
  DEFAULT_BATCH_SIZE,
  DEFAULT_PRIOR_STRENGTH,
  type Recalibrator,
} from '../recalibration/index.js';
import type { HeldLock } from '../repository/index.js';
import { rejectionOnAbort } from './abort-rejection.js';
import { nodeEngineOptions } from './engine-runtime.js';
import { type Job, traceOf } from './job-registry.js';
import type { ActivationNotWritten, AvailableVersion } from './model-registry.js';
import { lineageOf } from './recalibration-lineage.js';
import type { NotActivated, RecalibrationOutcome } from './recalibration-outcome.js';
import type { RecalibrationRequest, RecalibrationService } from './recalibration-service.js';
import type { RowsReceived } from './row-chunks.js';
import { SpillingRowStore } from './spilling-row-store.js';
import { storageWarningOf } from './storage-warning.js';

/** What the active-version record named when a published version was left not activated. */
const activeNow = (activeFound: number | null): string =>
  activeFound === null
    ? 'the model has no usable active-version record'
    : `version ${activeFound} is active`;

/** The admin call that activates a published version (what an operator is told to send). */
export const activationCall = (model: string, version: number): string =>
  `POST /v1/models/${model}/versions/${version}:activate`;

/** Whether `error` refuses the request that asked for the recalibration (a 4xx of the catalogue). */
export const refusesRequest = (error: unknown): boolean =>
  isNormserveError(error) && error.status < 500;

/** How often a running upload's count of rows read is copied into its job's progress. */
const RECEIVED_PROGRESS_MS = 250;

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

  /** Whether the rows received are too few for any recalibration (TOO_FEW_SAMPLES at complete). */
  get tooFewRows(): boolean {
    return this.recalibrator.rows < this.recalibrator.minimumRows;
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
    const cut = rejectionOnAbort(receiving);
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
      // Every row is through the statistics (but a running recalibration's skipped last batch):
      // said whatever the last progress report was (a running recalibration whose last batch
      // ended with its upload reported none after the upload's, whose total is null: it finished
      // with `total_rows: null`, h251).
      const rows = this.recalibrator.rows;
      this.service.jobs.update(this.job, {
        phase: 'publishing',
        progress: { rows: rows - (result.skipped ?? 0), total_rows: rows },
      });
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
        // Stops waiting for the record's lock (another replica's writer) once the shutdown's
        // budget runs out: nothing published, and the job settles within the budget's reserve.
        {
          ifActive: this.parent.version,
          fence: this.lock.assertHeld,
          jobId: this.job.id,
          stopWaiting: () => this.service.throwIfInterrupted(this.job),
        },
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
    busy: ActivationNotWritten,
  ): NotActivated {
    const { name } = this.parent;
    const call = activationCall(name, version);
    const notActivated: NotActivated = {
      code: busy.code,
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

/** `rows` in consecutive views of at most `step` values. */
export function* slices(rows: Float32Array, step: number): Generator<Float32Array> {
  for (let i = 0; i < rows.length; i += step)
    yield rows.subarray(i, Math.min(rows.length, i + step));
}
