import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { isNormserveError } from '../errors/index.js';
import {
  currentOwner,
  HEARTBEAT_INTERVAL_MS,
  isOwnerGone,
  JOBS_DIR,
  type ModelRepository,
  type ProcessOwner,
  RepositoryFiles,
  STALE_AFTER_MS,
  sameProcess,
  storageFailure,
  UnsyncedWrite,
  writeFileAtomically,
  writeUnderClaim,
} from '../repository/index.js';
import {
  type Abandonment,
  abandonment,
  type Job,
  type JobState,
  jobFromRecord,
  type TraceContext,
} from './job-record.js';
import { type Log, silentLog } from './logger.js';

export type { Job, JobState };

/** A job record is a few kilobytes (its result's layer report); anything this large is not one. */
const MAX_JOB_RECORD_BYTES = 1024 * 1024;

/**
 * A job id as a caller gives it (the job-status route's path parameter): a UUID, read as the
 * lowercase form ids are made in (randomUUID) and their records are named by (`<id>.json`). RFC
 * 9562 §4 reads a UUID's hex digits case-insensitively, so an id in capitals names the same job.
 */
export const jobIdSchema = z.string().uuid().toLowerCase();
/** The suffix of a job record's file name. */
const RECORD_SUFFIX = '.json';

/** Whether `id` is a job id in its stored form: what a record's file may be named after. */
function isStoredJobId(id: string): boolean {
  return jobIdSchema.safeParse(id).data === id;
}

/** Finished job records are deleted this long after their last change (7 days). */
export const JOB_RETENTION_MS = 7 * 24 * 3_600_000;
/** How often a server deletes expired records and settles abandoned ones it has not been asked about. */
export const JOB_SWEEP_INTERVAL_MS = 3_600_000;

export interface JobRegistryOptions {
  /** Where records are shared (`<repository>/.jobs`); without it jobs live in memory only. */
  dir?: string;
  /** Releases the model lock of a job found abandoned (only when that job still holds it). */
  releaseLock?: (job: Job) => Promise<void>;
  log?: Log;
  /**
   * Finished jobs kept in memory by this process (the shared records stay on disk), besides those
   * whose end is not on disk yet: they stay until it is (their record rewritten at each heartbeat).
   */
  keepFinished?: number;
  /** Progress is written at most this often; state changes at once. */
  writeIntervalMs?: number;
  heartbeatMs?: number;
  staleMs?: number;
  retentionMs?: number;
  /** The clock (tests move it). */
  now?: () => number;
  /** Whether an owner process is known to be gone (tests replace the pid probe). */
  isGone?: (owner: ProcessOwner) => boolean;
}

/**
 * How often a reader settling an abandoned record tries for the record's claim (about 0.4 s in
 * all): a live writer holds it for a read and a rename; past that the record is answered as read,
 * and settled by a later read.
 */
const SETTLE_CLAIM_ATTEMPTS = 10;

/**
 * Ids of the jobs any registry of this process created (kept while the registry keeps the job):
 * a running record naming this process's host and pid but not among them is an earlier process's.
 */
const createdInThisProcess = new Set<string>();

/**
 * Jobs, kept in memory by the process that runs them and, with a `dir` (the repository's
 * `.jobs/`), written there as JSON so that any worker or replica sharing the repository answers
 * GET /v1/jobs/{id}.
 *
 * A running job's record names its owner (host name and pid) and carries a heartbeat, rewritten
 * every `heartbeatMs`. Any other process reading a `running` record whose owner is gone, or whose
 * heartbeat is older than `staleMs`, reports it failed with JOB_ABANDONED, writes that back and
 * releases the model lock the job held (see `abandonment` for the rule). Finished records are
 * deleted `retentionMs` after their last change by `sweep`, which also settles abandoned records
 * nobody asked about.
 *
 * Every write of a record is a compare-and-write under the record's claim (`writeUnderClaim`, the
 * model lock's claim): the owner rewrites its record only while the record on disk is still its
 * own and `running`, and a reader settles it only if, read again under the claim, it is still
 * abandoned. So a finished record is never rewritten: the owner of a job settled as abandoned
 * while it was stalled (SIGSTOP, a frozen mount) writes nothing when it resumes, neither its
 * heartbeat nor its own end, and takes the settled record as its job's (`settledElsewhere`). A
 * client polling the job sees `running` and then one final state.
 */
export class JobRegistry {
  private readonly jobs = new Map<string, Job>();
  private readonly lastWrite = new Map<string, number>();
  /**
   * Writes queued per job and not yet settled: a heartbeat queues no other for a job that has one
   * (a write can wait a minute for a busy claim, or on a stalled mount; one per beat piled up
   * behind it, and flush() at shutdown waited for every one: h252).
   */
  private readonly queued = new Map<string, number>();
  /** A write of each job's progress due when its write interval is over (persist). */
  private readonly trailingWrites = new Map<string, NodeJS.Timeout>();
  /** The last reason each job's record could not be written (logged once per reason). */
  private readonly unwritable = new Map<string, string>();
  private readonly dir: string | undefined;
  private readonly releaseLock: ((job: Job) => Promise<void>) | undefined;
  private readonly log: Log;
  private readonly keepFinished: number;
  private readonly writeIntervalMs: number;
  private readonly heartbeatMs: number;
  private readonly staleMs: number;
  private readonly retentionMs: number;
  private readonly now: () => number;
  private readonly isGone: (owner: ProcessOwner) => boolean;
  private readonly owner = currentOwner();
  /** Jobs of this process whose record another process settled (abandoned): never written again. */
  private readonly settledElsewhere = new Set<string>();
  /** The state each job's record on disk holds, as this process last wrote or read it there. */
  private readonly recordedState = new Map<string, Job['state']>();
  private heartbeat: NodeJS.Timeout | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  private writes: Promise<void> = Promise.resolve();

  constructor(options: JobRegistryOptions = {}) {
    this.dir = options.dir;
    this.releaseLock = options.releaseLock;
    this.log = options.log ?? silentLog;
    this.keepFinished = options.keepFinished ?? 100;
    this.writeIntervalMs = options.writeIntervalMs ?? 250;
    this.heartbeatMs = options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
    this.staleMs = options.staleMs ?? STALE_AFTER_MS;
    this.retentionMs = options.retentionMs ?? JOB_RETENTION_MS;
    this.now = options.now ?? Date.now;
    this.isGone = options.isGone ?? isOwnerGone;
  }

  /** The registry of a model repository: records in `<root>/.jobs`, locks released through it. */
  static forRepository(
    repository: ModelRepository,
    options: Omit<JobRegistryOptions, 'dir' | 'releaseLock'> = {},
  ): JobRegistry {
    return new JobRegistry({
      ...options,
      dir: join(repository.root, JOBS_DIR),
      releaseLock: (job) => repository.releaseLockOf(job.model, job.id),
    });
  }

  create(
    kind: Job['kind'],
    model: string,
    id: string = randomUUID(),
    trace: TraceContext = {},
  ): Job {
    const now = new Date(this.now()).toISOString();
    const job: Job = {
      id,
      kind,
      model,
      state: 'running',
      phase: 'receiving',
      progress: { rows: 0, total_rows: null },
      created_at: now,
      updated_at: now,
      owner: { ...this.owner },
      heartbeat_at: now,
      ...definedOnly(trace),
    };
    this.jobs.set(job.id, job);
    createdInThisProcess.add(job.id);
    this.persist(job, true);
    this.startHeartbeat();
    return job;
  }

  /**
   * A job of this process, or one another process wrote to the shared directory; a `running`
   * record of a process that is gone is settled as failed (JOB_ABANDONED) first.
   */
  async get(id: string): Promise<Job | undefined> {
    const local = this.jobs.get(id);
    if (local || !this.dir || !isStoredJobId(id)) return local;
    const record = await this.read(join(this.dir, `${id}${RECORD_SUFFIX}`));
    return record ? this.settleIfAbandoned(record) : undefined;
  }

  update(
    job: Job,
    change: Partial<Pick<Job, 'phase' | 'progress' | 'state' | 'result' | 'error'>>,
  ): void {
    // Its record was settled by another process: that is the job's end, already seen by others.
    if (this.settledElsewhere.has(job.id)) return;
    const important =
      change.state !== undefined || (change.phase !== undefined && change.phase !== job.phase);
    const now = new Date(this.now()).toISOString();
    Object.assign(job, change, { updated_at: now });
    if (job.state === 'running') {
      job.heartbeat_at = now;
    }
    this.persist(job, important);
    if (job.state !== 'running') this.prune();
  }

  /** Resolves when every job file written so far is on disk (for tests and shutdown). */
  flush(): Promise<void> {
    return this.writes;
  }

  /** Sweeps now and then every JOB_SWEEP_INTERVAL_MS until `close` (a server's housekeeping). */
  async startSweeping(intervalMs = JOB_SWEEP_INTERVAL_MS): Promise<void> {
    await this.sweep();
    this.sweeper ??= setInterval(() => {
      this.sweep().catch((e: unknown) => this.log.error({ err: e }, 'job sweep failed'));
    }, intervalMs);
    this.sweeper.unref();
  }

  /** Stops the timers (heartbeats, sweeps); call after the running jobs have settled. */
  close(): void {
    for (const timer of this.trailingWrites.values()) clearTimeout(timer);
    this.trailingWrites.clear();
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.sweeper) clearInterval(this.sweeper);
    this.heartbeat = undefined;
    this.sweeper = undefined;
  }

  /**
   * Housekeeping of the shared directory: settles abandoned `running` records, deletes finished
   * ones (succeeded, failed, abandoned) whose last change is older than `retentionMs`, and files
   * that are not job records once their mtime is that old.
   */
  async sweep(): Promise<void> {
    const dir = this.dir;
    if (!dir) return;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    const now = this.now();
    for (const name of names) {
      const path = join(dir, name);
      const isRecord =
        name.endsWith(RECORD_SUFFIX) && isStoredJobId(name.slice(0, -RECORD_SUFFIX.length));
      const record = isRecord ? await this.read(path) : undefined;
      try {
        if (record === undefined) {
          // Not a record (or unreadable): temporaries of interrupted writes are left to the
          // repository's start-up cleanup; anything else goes once it is as old as a record.
          if (!name.startsWith('.') && now - (await stat(path)).mtimeMs > this.retentionMs)
            await rm(path, { force: true });
          continue;
        }
        if (this.jobs.has(record.id)) continue;
        const job = await this.settleIfAbandoned(record);
        if (job.state !== 'running' && now - Date.parse(job.updated_at) > this.retentionMs)
          await rm(path, { force: true });
      } catch {
        // removed by another process meanwhile
      }
    }
  }

  private async read(path: string): Promise<Job | undefined> {
    let text: string | undefined;
    try {
      // Size-checked before it is read: a record is a few kilobytes, anything huge is no job.
      text = await new RepositoryFiles(dirname(path)).readText(path, MAX_JOB_RECORD_BYTES);
    } catch {
      return undefined;
    }
    if (text === undefined) return undefined;
    try {
      return jobFromRecord(JSON.parse(text));
    } catch {
      return undefined;
    }
  }

  /**
   * Settles a record of another process as JOB_ABANDONED when `abandonment` says so, judged again
   * on the record read under its claim (its owner may have written a heartbeat meanwhile, another
   * reader settled it): the record as it then is, or as read when its claim stayed busy.
   */
  private async settleIfAbandoned(job: Job): Promise<Job> {
    const dir = this.dir;
    if (!dir || !this.abandonedBecause(job)) return job;
    const path = join(dir, `${job.id}${RECORD_SUFFIX}`);
    const settled = await writeUnderClaim(
      path,
      async (fence) => {
        const current = await this.read(path);
        const why = current && this.abandonedBecause(current);
        if (!current || !why) return { job: current ?? job };
        const failed: Job = {
          ...current,
          state: 'failed',
          phase: 'failed',
          updated_at: new Date(this.now()).toISOString(),
          error: {
            code: 'JOB_ABANDONED',
            message: abandonedMessage(current, why, this.staleMs),
          },
        };
        await this.write(dir, failed, fence);
        return { job: failed, settled: true };
      },
      { staleMs: this.staleMs, now: this.now, attempts: SETTLE_CLAIM_ATTEMPTS },
    );
    if (settled === 'busy') return job;
    if (!settled.settled) return settled.job;
    const failed = settled.job;
    try {
      await this.releaseLock?.(failed);
    } catch (e) {
      this.log.error({ err: e, job: job.id, model: job.model }, 'releasing the model lock failed');
    }
    this.log.warn(
      {
        job: failed.id,
        model: failed.model,
        owner: failed.owner,
        heartbeat_at: failed.heartbeat_at,
        ...traceOf(failed),
        error: failed.error,
      },
      'recalibration job abandoned by its process',
    );
    return failed;
  }

  /** Why a record is abandoned (`abandonment`, or an earlier process's with this pid), if it is. */
  private abandonedBecause(job: Job): Abandonment | undefined {
    // A running record naming this very process that no registry of it created was left by an
    // earlier process with the same pid in this pid namespace (a record from before records named
    // it, of a restarted container's PID 1; a server restarted in its container): gone, not alive.
    const earlierSamePid =
      job.state === 'running' &&
      job.owner !== undefined &&
      sameProcess(job.owner, this.owner) &&
      !createdInThisProcess.has(job.id);
    return earlierSamePid && job.owner
      ? { reason: 'owner-gone', owner: job.owner }
      : abandonment(job, this.now(), this.isGone, this.staleMs);
  }

  private startHeartbeat(): void {
    if (this.heartbeat || !this.dir) return;
    this.heartbeat = setInterval(() => {
      let running = 0;
      let unwritten = 0;
      for (const job of this.jobs.values()) {
        if (job.state !== 'running') {
          // A finished job whose end is not on disk (the storage refused it, its claim stayed
          // busy) is written again at each beat until it is, then forgotten (prune): other
          // processes would otherwise settle its `running` record as abandoned (h250).
          if (this.dir && !this.settledElsewhere.has(job.id) && !this.recorded(job)) {
            unwritten++;
            if (!this.queued.has(job.id)) this.persist(job, true);
          }
          continue;
        }
        running++;
        job.heartbeat_at = new Date(this.now()).toISOString();
        if (!this.queued.has(job.id)) this.persist(job, true);
      }
      if (running === 0 && unwritten === 0) {
        clearInterval(this.heartbeat);
        this.heartbeat = undefined;
      }
    }, this.heartbeatMs);
    this.heartbeat.unref();
  }

  private persist(job: Job, force: boolean): void {
    const dir = this.dir;
    if (!dir) return;
    const now = this.now();
    const waitMs = this.writeIntervalMs - (now - (this.lastWrite.get(job.id) ?? 0));
    if (!force && waitMs > 0) {
      // Written when the interval is over, as it then is: the last progress before a pause (the
      // end of an upload, a stalled client) reached other processes only at the next heartbeat,
      // 5 s later (h251).
      if (!this.trailingWrites.has(job.id)) {
        const timer = setTimeout(
          () => {
            this.trailingWrites.delete(job.id);
            if (this.jobs.get(job.id) === job && job.state === 'running') this.persist(job, true);
          },
          Math.min(waitMs, this.writeIntervalMs),
        );
        timer.unref();
        this.trailingWrites.set(job.id, timer);
      }
      return;
    }
    clearTimeout(this.trailingWrites.get(job.id));
    this.trailingWrites.delete(job.id);
    this.lastWrite.set(job.id, now);
    this.queued.set(job.id, (this.queued.get(job.id) ?? 0) + 1);
    const settled = () => {
      const left = (this.queued.get(job.id) ?? 1) - 1;
      if (left > 0) this.queued.set(job.id, left);
      else this.queued.delete(job.id);
    };
    this.writes = this.writes
      // The job as it is when its turn comes (a write queued behind one that waited for a busy
      // claim carries the latest heartbeat and progress, not those of when it was queued).
      .then(() => this.writeOwn(dir, job, { ...job }))
      .then(settled, (error: unknown) => {
        settled();
        // The job goes on in this process (GET /v1/jobs answers from memory); other processes
        // see its last record written. Said once per job and reason, not at every heartbeat. A
        // failure of the storage (the record, its directory or its claim) is named as such.
        const e = storageFailure(
          error,
          `cannot write the record of job ${job.id}`,
          dirname(dir),
          dir,
        );
        const reason = e instanceof Error ? e.message : String(e);
        if (this.unwritable.get(job.id) === reason) return;
        this.unwritable.set(job.id, reason);
        this.log.warn(
          { job: job.id, model: job.model, code: isNormserveError(e) ? e.code : undefined, reason },
          'job record not written',
        );
      });
  }

  /**
   * Writes `snapshot` of this process's `job` unless the record on disk is no longer its own and
   * running (compare-and-write under the record's claim): settled by another process, it stays as
   * it is, and `job` becomes that record.
   */
  private async writeOwn(dir: string, job: Job, snapshot: Job): Promise<void> {
    if (this.settledElsewhere.has(job.id)) return;
    // Forgotten meanwhile (prune): only a job whose end is on disk is.
    if (this.jobs.get(job.id) !== job) return;
    // Its end is on disk already (a beat's retry queued behind the write that landed).
    if (snapshot.state !== 'running' && this.recordedState.get(job.id) === snapshot.state) return;
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${job.id}${RECORD_SUFFIX}`);
    const outcome = await writeUnderClaim(
      path,
      async (fence) => {
        const current = await this.read(path);
        if (current && !(current.state === 'running' && this.ownedHere(current))) return current;
        await this.write(dir, snapshot, fence);
        this.recordedState.set(job.id, snapshot.state);
        // Written after a failure was logged: said once, so the warning is not the last word.
        if (this.unwritable.delete(job.id))
          this.log.info({ job: job.id, model: job.model }, 'job record written again');
        return undefined;
      },
      { staleMs: this.staleMs, now: this.now },
    );
    // A finished job is forgotten once its end is on disk (beyond keepFinished), not before.
    if (outcome === undefined && snapshot.state !== 'running') this.prune();
    if (outcome === 'busy' || outcome === undefined) return;
    this.settledElsewhere.add(job.id);
    this.log.warn(
      {
        job: job.id,
        model: job.model,
        ...traceOf(job),
        record: { state: outcome.state, error: outcome.error },
        not_written: { state: snapshot.state, phase: snapshot.phase, error: snapshot.error },
      },
      'job record settled by another process while this one ran it; not rewritten',
    );
    // The record other processes answer becomes this process's answer too (GET /v1/jobs/{id}).
    for (const key of Object.keys(job)) delete (job as Record<string, unknown>)[key];
    Object.assign(job, outcome);
    this.recordedState.set(job.id, outcome.state);
    this.prune();
  }

  private ownedHere(record: Job): boolean {
    return record.owner !== undefined && sameProcess(record.owner, this.owner);
  }

  /**
   * Writes a job's record, fenced by `fence` under the record's claim. A record renamed into place
   * whose directory could not be synced is written: records are the jobs' state for other
   * processes, rewritten at every change and heartbeat.
   */
  private async write(dir: string, job: Job, fence?: () => Promise<void>): Promise<void> {
    try {
      await writeFileAtomically(
        dir,
        `${job.id}${RECORD_SUFFIX}`,
        new TextEncoder().encode(JSON.stringify(job)),
        true,
        fence,
      );
    } catch (e) {
      if (e instanceof UnsyncedWrite) return;
      throw e;
    }
  }

  /** Whether a job's state is the one its record on disk holds (always, without records). */
  private recorded(job: Job): boolean {
    return !this.dir || this.recordedState.get(job.id) === job.state;
  }

  /**
   * Forgets the oldest finished jobs beyond `keepFinished` — only those whose end is recorded on
   * disk. A job whose last record could not be written (storage, a claim that stayed busy) stays:
   * its record still says `running` with this process as owner, and once forgotten this process
   * would read it back as an earlier process's leftover and settle it JOB_ABANDONED ("no longer
   * exists"), though the job ended here, perhaps published. The heartbeat writes its end again
   * until it lands; until then other processes see it abandoned once its heartbeat is stale.
   */
  private prune(): void {
    const finished = [...this.jobs.values()].filter(
      (j) => j.state !== 'running' && this.recorded(j),
    );
    for (const job of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) {
      this.jobs.delete(job.id);
      this.recordedState.delete(job.id);
      createdInThisProcess.delete(job.id);
      this.settledElsewhere.delete(job.id);
      this.lastWrite.delete(job.id);
      this.unwritable.delete(job.id);
    }
  }
}

/** The request id and trace of a job, for its log lines. */
export const traceOf = (job: Job): TraceContext =>
  definedOnly({ request_id: job.request_id, trace_id: job.trace_id, parent_id: job.parent_id });

function definedOnly(trace: TraceContext): TraceContext {
  const out: TraceContext = {};
  if (trace.request_id !== undefined) out.request_id = trace.request_id;
  if (trace.trace_id !== undefined) out.trace_id = trace.trace_id;
  if (trace.parent_id !== undefined) out.parent_id = trace.parent_id;
  return out;
}

function abandonedMessage(job: Job, why: Abandonment, staleMs: number): string {
  const owner = job.owner ? `host ${job.owner.host}, pid ${job.owner.pid}` : 'unknown process';
  const cause =
    why.reason === 'owner-gone'
      ? `the process running it (${owner}) no longer exists`
      : why.ageMs < 0
        ? `the process running it (${owner}) shows a heartbeat ${Math.round(-why.ageMs / 1000)} s ahead of this host's clock (bound ${staleMs / 1000} s): a clock set wrong, not a live heartbeat`
        : `the process running it (${owner}) has not shown a heartbeat for ${Math.round(why.ageMs / 1000)} s (bound ${staleMs / 1000} s)`;
  const outcome =
    job.phase === 'publishing'
      ? 'it stopped while publishing, so a new version may exist without this job knowing'
      : 'nothing was published';
  return `job ${job.id} was abandoned in phase "${job.phase}": ${cause}; ${outcome}; the model lock is released, so a new recalibration may start`;
}
