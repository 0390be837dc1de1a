import { randomUUID } from 'node:crypto';
import type { ErrorLocation } from '../errors/index.js';

export type JobState = 'running' | 'succeeded' | 'failed';

/** A long-running admin operation (a recalibration), as GET /v1/jobs/{id} reports it. */
export interface Job {
  id: string;
  kind: 'recalibration';
  model: string;
  state: JobState;
  /** What the job is doing: receiving rows, computing statistics, publishing. */
  phase: string;
  progress: { rows: number; total_rows: number | null };
  created_at: string;
  updated_at: string;
  result?: unknown;
  error?: { code: string; message: string; errors?: ErrorLocation[] };
}

/**
 * Jobs of this process, kept in memory: running ones, and the last `keepFinished` finished ones.
 * (A job lives in the process that runs it; with several replicas, poll the replica that answered
 * 202, whose Location header names the job.)
 */
export class JobRegistry {
  private readonly jobs = new Map<string, Job>();
  private readonly keepFinished: number;

  constructor(keepFinished = 100) {
    this.keepFinished = keepFinished;
  }

  create(kind: Job['kind'], model: string): Job {
    const now = new Date().toISOString();
    const job: Job = {
      id: randomUUID(),
      kind,
      model,
      state: 'running',
      phase: 'receiving',
      progress: { rows: 0, total_rows: null },
      created_at: now,
      updated_at: now,
    };
    this.jobs.set(job.id, job);
    return job;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  update(
    job: Job,
    change: Partial<Pick<Job, 'phase' | 'progress' | 'state' | 'result' | 'error'>>,
  ): void {
    Object.assign(job, change, { updated_at: new Date().toISOString() });
    if (job.state !== 'running') this.prune();
  }

  private prune(): void {
    const finished = [...this.jobs.values()].filter((j) => j.state !== 'running');
    for (const job of finished.slice(0, Math.max(0, finished.length - this.keepFinished)))
      this.jobs.delete(job.id);
  }
}
