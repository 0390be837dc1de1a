import { randomUUID } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { RepositoryFiles, writeFileAtomically } from '../repository/index.js';

/**
 * A long-running admin operation (a recalibration), as GET /v1/jobs/{id} reports it and as its
 * record in `<repository>/.jobs/<id>.json` holds it (read back through this schema).
 */
export const jobRecordSchema = z.object({
  id: z.string(),
  kind: z.literal('recalibration'),
  model: z.string(),
  state: z.enum(['running', 'succeeded', 'failed']),
  /** What the job is doing: receiving rows, computing statistics, publishing. */
  phase: z.string(),
  progress: z.object({ rows: z.number(), total_rows: z.number().nullable() }),
  created_at: z.string(),
  updated_at: z.string(),
  result: z.unknown().optional(),
  error: z
    .object({
      code: z.string(),
      message: z.string(),
      errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    })
    .optional(),
});
export type Job = z.output<typeof jobRecordSchema>;
export type JobState = Job['state'];

/** A job record is a few kilobytes (its result's layer report); anything this large is not one. */
const MAX_JOB_RECORD_BYTES = 1024 * 1024;

const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Jobs, kept in memory by the process that runs them and, with a `dir` (the repository's
 * `.jobs/`), written there as JSON so that any worker or replica sharing the repository answers
 * GET /v1/jobs/{id}. Progress is written at most every `writeIntervalMs`; state changes at once.
 */
export class JobRegistry {
  private readonly jobs = new Map<string, Job>();
  private readonly lastWrite = new Map<string, number>();
  private readonly dir: string | undefined;
  private readonly keepFinished: number;
  private readonly writeIntervalMs: number;
  private writes: Promise<void> = Promise.resolve();

  constructor(options: { dir?: string; keepFinished?: number; writeIntervalMs?: number } = {}) {
    this.dir = options.dir;
    this.keepFinished = options.keepFinished ?? 100;
    this.writeIntervalMs = options.writeIntervalMs ?? 250;
  }

  create(kind: Job['kind'], model: string, id: string = randomUUID()): Job {
    const now = new Date().toISOString();
    const job: Job = {
      id,
      kind,
      model,
      state: 'running',
      phase: 'receiving',
      progress: { rows: 0, total_rows: null },
      created_at: now,
      updated_at: now,
    };
    this.jobs.set(job.id, job);
    this.persist(job, true);
    return job;
  }

  /** A job of this process, or one another process wrote to the shared directory. */
  async get(id: string): Promise<Job | undefined> {
    const local = this.jobs.get(id);
    if (local || !this.dir || !JOB_ID.test(id)) return local;
    // A record that is missing, too large, not JSON or not a job is no job (404).
    try {
      const text = await new RepositoryFiles(this.dir).readText(
        join(this.dir, `${id}.json`),
        MAX_JOB_RECORD_BYTES,
      );
      return text === undefined ? undefined : jobRecordSchema.parse(JSON.parse(text));
    } catch {
      return undefined;
    }
  }

  update(
    job: Job,
    change: Partial<Pick<Job, 'phase' | 'progress' | 'state' | 'result' | 'error'>>,
  ): void {
    const important =
      change.state !== undefined || (change.phase !== undefined && change.phase !== job.phase);
    Object.assign(job, change, { updated_at: new Date().toISOString() });
    this.persist(job, important);
    if (job.state !== 'running') this.prune();
  }

  /** Resolves when every job file written so far is on disk (for tests and shutdown). */
  flush(): Promise<void> {
    return this.writes;
  }

  private persist(job: Job, force: boolean): void {
    const dir = this.dir;
    if (!dir) return;
    const now = Date.now();
    if (!force && now - (this.lastWrite.get(job.id) ?? 0) < this.writeIntervalMs) return;
    this.lastWrite.set(job.id, now);
    const bytes = new TextEncoder().encode(JSON.stringify(job));
    this.writes = this.writes
      .then(() => writeFileAtomically(dir, `${job.id}.json`, bytes, true))
      .catch(() => undefined);
  }

  private prune(): void {
    const finished = [...this.jobs.values()].filter((j) => j.state !== 'running');
    for (const job of finished.slice(0, Math.max(0, finished.length - this.keepFinished))) {
      this.jobs.delete(job.id);
      this.lastWrite.delete(job.id);
    }
  }

  /** Deletes job files older than `maxAgeMs` (start-up housekeeping). */
  async removeOlderThan(maxAgeMs: number): Promise<void> {
    if (!this.dir) return;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names.filter((n) => n.endsWith('.json'))) {
      const path = join(this.dir, name);
      try {
        if (Date.now() - (await stat(path)).mtimeMs > maxAgeMs) await rm(path, { force: true });
      } catch {
        // removed by another process meanwhile
      }
    }
  }
}
