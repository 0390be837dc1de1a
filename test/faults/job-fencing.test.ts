/**
 * Job records are fenced like the model lock: a record another process settled (JOB_ABANDONED) is
 * never rewritten by the job's own process when it resumes. Issue: replica A ran a recalibration
 * and was stopped (SIGSTOP) past the lease; replica B broke the lock and recorded the job as
 * abandoned; A resumed, and its job heartbeat rewrote the record `running` before its fencing
 * check ended it `failed` with LOCK_LOST: a client polling GET /v1/jobs/{id} saw abandoned →
 * running → failed. The pause is simulated in-process (as in lock-fencing.test.ts): the owner's
 * heartbeat timer is a fake one, fired when the owner "resumes", and the other process is a
 * second registry whose clock is past the stale bound.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { ModelRepository, STALE_AFTER_MS } from '../../src/repository/index.js';
import {
  type Job,
  JobRegistry,
  ModelRegistry,
  RecalibrationService,
} from '../../src/service/index.js';
import { makeRepository } from '../helpers/app.js';
import { digitsTestRows, nightShift, packRows } from '../helpers/digits.js';

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const HEARTBEAT_MS = 5_000;
const T0 = Date.parse('2026-12-02T11:00:00.000Z');

function repository(): string {
  const root = makeRepository(['digits']);
  roots.push(root);
  return root;
}
const readRecord = (root: string, id: string): Job =>
  JSON.parse(readFileSync(join(root, '.jobs', `${id}.json`), 'utf8')) as Job;
/** What a poller of GET /v1/jobs/{id} sees of a record: its state and error code. */
const seen = (job: Job | undefined) =>
  job === undefined ? 'none' : `${job.state}${job.error ? `:${job.error.code}` : ''}`;
const codeOf = (e: unknown) => (isNormserveError(e) ? e.code : String(e));

describe('a job record settled as abandoned while its owner was stalled', () => {
  it('is not rewritten by the owner when it resumes: neither its heartbeat nor its updates nor its end', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const root = repository();
    let ownerNow = T0;
    const owner = JobRegistry.forRepository(new ModelRepository(root), {
      heartbeatMs: HEARTBEAT_MS,
      now: () => ownerNow,
    });
    // The other replica, whose clock reads the owner's last heartbeat as older than the bound.
    const other = JobRegistry.forRepository(new ModelRepository(root), {
      now: () => T0 + STALE_AFTER_MS + 5_000,
    });
    const sequence: string[] = [];
    try {
      const job = owner.create('recalibration', 'digits');
      await owner.flush();
      sequence.push(seen(readRecord(root, job.id)));
      // The owner is stopped here; the other replica settles its job.
      const settled = await other.get(job.id);
      expect(settled?.error?.message).toContain('has not shown a heartbeat for 35 s (bound 30 s)');
      sequence.push(seen(readRecord(root, job.id)));
      // The owner resumes: its heartbeat timer fires, then its job moves on and ends.
      ownerNow = T0 + STALE_AFTER_MS + 6_000;
      vi.advanceTimersByTime(HEARTBEAT_MS);
      await owner.flush();
      sequence.push(seen(readRecord(root, job.id)));
      owner.update(job, { phase: 'publishing', progress: { rows: 40, total_rows: 40 } });
      owner.update(job, {
        state: 'failed',
        phase: 'failed',
        error: { code: 'LOCK_LOST', message: 'the lock was broken' },
      });
      await owner.flush();
      sequence.push(seen(readRecord(root, job.id)));
      expect(sequence).toEqual([
        'running',
        'failed:JOB_ABANDONED',
        'failed:JOB_ABANDONED',
        'failed:JOB_ABANDONED',
      ]);
      // The record on disk is the other replica's, byte for byte, and the owner answers it too.
      expect(readRecord(root, job.id)).toEqual(settled);
      expect(await owner.get(job.id)).toEqual(settled);
      // Its heartbeat stopped with it: nothing more is written.
      ownerNow += HEARTBEAT_MS;
      vi.advanceTimersByTime(HEARTBEAT_MS);
      await owner.flush();
      expect(readRecord(root, job.id)).toEqual(settled);
      expect(readdirSync(join(root, '.jobs'))).toEqual([`${job.id}.json`]);
    } finally {
      owner.close();
    }
  });

  it('a live owner’s heartbeat keeps it running; its own end is written', async () => {
    const root = repository();
    const owner = JobRegistry.forRepository(new ModelRepository(root), { now: () => T0 });
    const other = JobRegistry.forRepository(new ModelRepository(root), {
      now: () => T0 + STALE_AFTER_MS,
    });
    try {
      const job = owner.create('recalibration', 'digits');
      owner.update(job, { phase: 'statistics', progress: { rows: 10, total_rows: null } });
      await owner.flush();
      expect(seen(await other.get(job.id))).toBe('running');
      const result = {
        model: 'digits',
        version: 2,
        parent_version: 1,
        mode: 'exact' as const,
        samples: 10,
        activated: true,
        duration_ms: 1,
        data_sha256: '0'.repeat(64),
        layers: [],
        job_id: job.id,
      };
      owner.update(job, { state: 'succeeded', phase: 'done', result });
      await owner.flush();
      expect(readRecord(root, job.id)).toMatchObject({
        state: 'succeeded',
        result: { version: 2 },
      });
      expect(seen(await other.get(job.id))).toBe('succeeded');
      expect((await other.get(job.id))?.result).toEqual(result);
    } finally {
      owner.close();
    }
  });

  it('is settled only under its claim: while a live process holds the claim, a reader answers it as read and writes nothing', async () => {
    const root = repository();
    const jobs = join(root, '.jobs');
    const owner = JobRegistry.forRepository(new ModelRepository(root), { now: () => T0 });
    const other = JobRegistry.forRepository(new ModelRepository(root), {
      now: () => T0 + STALE_AFTER_MS + 5_000,
    });
    try {
      const job = owner.create('recalibration', 'digits');
      await owner.flush();
      // The owner's claim, as a process in the middle of its read and its rename holds it (a live
      // pid of this host: the test runner's parent).
      const claimName = await claimNameOf(root, job.id);
      writeFileSync(
        join(jobs, claimName),
        JSON.stringify({
          owner: randomUUID(),
          host: hostname(),
          pid: process.ppid,
          acquired_at: new Date().toISOString(),
        }),
      );
      expect(seen(await other.get(job.id))).toBe('running');
      expect(seen(readRecord(root, job.id))).toBe('running');
      rmSync(join(jobs, claimName));
      expect(seen(await other.get(job.id))).toBe('failed:JOB_ABANDONED');
      expect(readdirSync(jobs)).toEqual([`${job.id}.json`]);
    } finally {
      owner.close();
    }
  });
});

/** The name of a record's claim, as a write of the record takes it (seen while it is held). */
async function claimNameOf(root: string, id: string): Promise<string> {
  const { writeUnderClaim } = await import('../../src/repository/index.js');
  const jobs = join(root, '.jobs');
  let name = '';
  await writeUnderClaim(join(jobs, `${id}.json`), async () => {
    name = readdirSync(jobs).find((n) => n.includes('.claim-')) ?? '';
  });
  expect(name).toMatch(/^\..*\.json\.claim-[0-9a-f]{24}$/);
  return name;
}

describe('a recalibration stalled past its lease and settled as abandoned by another replica', () => {
  it('ends with the abandoned record: a poller sees running, then JOB_ABANDONED, never running again', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const root = repository();
    const modelDir = join(root, 'digits');
    const registry = new ModelRegistry(root, { maxBatchSize: 64 });
    await registry.refresh();
    const service = new RecalibrationService(
      registry,
      JobRegistry.forRepository(registry.repository, { heartbeatMs: HEARTBEAT_MS }),
      { maxSamples: Number.MAX_SAFE_INTEGER },
    );
    // Replica B: its clock reads A's last heartbeat as more than the bound old.
    const other = JobRegistry.forRepository(new ModelRepository(root), {
      now: () => Date.now() + STALE_AFTER_MS + 60_000,
    });
    const sequence: string[] = [];
    let jobId = '';
    const publish = registry.publish.bind(registry);
    vi.spyOn(registry, 'publish').mockImplementation(async (...args) => {
      const lock = join(modelDir, '.recalibration.lock');
      jobId = (JSON.parse(readFileSync(lock, 'utf8')) as { owner: string }).owner;
      await service.jobs.flush();
      sequence.push(seen(readRecord(root, jobId)));
      // A is stopped here past its lease: its lock's heartbeat an hour old; B settles the job
      // (releasing its lock).
      const past = new Date(Date.now() - 3_600_000);
      utimesSync(lock, past, past);
      sequence.push(seen(await other.get(jobId)));
      // A resumes: its timers fire (the lock's heartbeat finds the lock gone, the job's heartbeat
      // finds the record settled), then it publishes, which its fencing check refuses.
      vi.advanceTimersByTime(HEARTBEAT_MS);
      await service.jobs.flush();
      sequence.push(seen(readRecord(root, jobId)));
      return publish(...args);
    });
    const rows = packRows(nightShift(digitsTestRows().x).slice(0, 40));
    const failure = await service
      .recalibrateRows({ model: 'digits', mode: 'exact', activate: true }, rows)
      .catch((e: unknown) => e);
    expect(codeOf(failure)).toBe('LOCK_LOST');
    await service.jobs.flush();
    sequence.push(seen(readRecord(root, jobId)));
    sequence.push(seen(await other.get(jobId)));
    // A's own answer (GET on A's workers) is the same record.
    sequence.push(seen(await service.jobs.get(jobId)));
    expect(sequence).toEqual([
      'running',
      'failed:JOB_ABANDONED',
      'failed:JOB_ABANDONED',
      'failed:JOB_ABANDONED',
      'failed:JOB_ABANDONED',
      'failed:JOB_ABANDONED',
    ]);
    // B could not know whether A's rename had landed: the record says so, and A's publish was refused.
    expect(readRecord(root, jobId).error?.message).toContain(
      'it stopped while publishing, so a new version may exist without this job knowing',
    );
    expect(
      readdirSync(modelDir)
        .filter((n) => /^\d+$/.test(n))
        .sort(),
    ).toEqual(['1']);
    expect(readdirSync(modelDir).filter((n) => n.startsWith('.'))).toEqual([]);
    await service.close();
  });
});
