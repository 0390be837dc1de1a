/**
 * Jobs that end: a job record names its owner process and carries a heartbeat; any other process
 * reading a `running` record whose owner is gone (same host, pid dead) or whose heartbeat is older
 * than STALE_AFTER_MS reports it failed with JOB_ABANDONED, writes that back and releases the model
 * lock the job held; finished records are deleted JOB_RETENTION_MS after their last change.
 * (The same with a real SIGKILLed worker: test/process/job-abandoned.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRepository, STALE_AFTER_MS } from '../../src/repository/index.js';
import { JOB_RETENTION_MS, type Job, JobRegistry } from '../../src/service/index.js';
import { waitFor } from '../helpers/admin.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const T0 = Date.parse('2026-11-26T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
/** This host as a job's owner names it: its name as it is. */
const HERE = hostname();

/** A pid that existed and no longer does (a child that has exited and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  expect(child.status).toBe(0);
  return child.pid;
}

function repository(): { root: string; jobs: string; lock: string } {
  const root = makeTempDir('jobs');
  mkdirSync(join(root, 'digits'));
  mkdirSync(join(root, '.jobs'));
  return { root, jobs: join(root, '.jobs'), lock: join(root, 'digits', '.recalibration.lock') };
}

/** A running record as another process wrote it. */
function runningRecord(id: string, overrides: Partial<Job> = {}): Job {
  return {
    id,
    kind: 'recalibration',
    model: 'digits',
    state: 'running',
    phase: 'statistics (layer 1)',
    progress: { rows: 100, total_rows: 360 },
    created_at: iso(T0 - 60_000),
    updated_at: iso(T0 - 1_000),
    owner: { host: 'another-host', pid: 4242 },
    heartbeat_at: iso(T0 - 1_000),
    request_id: 'req-1',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    ...overrides,
  };
}

const ids = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

function write(dir: string, job: Job | string, name = `${(job as Job).id}.json`): void {
  writeFileSync(join(dir, name), typeof job === 'string' ? job : JSON.stringify(job));
}

const lockOf = (owner: string) =>
  JSON.stringify({ owner, host: 'another-host', pid: 4242, acquired_at: iso(T0) });

describe('a running job of this process', () => {
  it('names its owner (host name, pid) and refreshes its heartbeat until it settles', async () => {
    const { root, jobs } = repository();
    const registry = JobRegistry.forRepository(new ModelRepository(root), { heartbeatMs: 20 });
    try {
      const job = registry.create('recalibration', 'digits', ids(1), {
        request_id: 'req-7',
        trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
        parent_id: '00f067aa0ba902b7',
      });
      await registry.flush();
      const first = JSON.parse(readFileSync(join(jobs, `${job.id}.json`), 'utf8')) as Job;
      expect(first).toMatchObject({
        state: 'running',
        owner: { host: HERE, pid: process.pid },
        request_id: 'req-7',
        trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
        parent_id: '00f067aa0ba902b7',
      });
      // Nothing else happens to the job: the heartbeat alone rewrites the record.
      await waitFor(async () => {
        await registry.flush();
        const now = JSON.parse(readFileSync(join(jobs, `${job.id}.json`), 'utf8')) as Job;
        return Date.parse(now.heartbeat_at!) > Date.parse(first.heartbeat_at!) ? true : undefined;
      }, 'a newer heartbeat on disk');
      registry.update(job, { state: 'succeeded', phase: 'done' });
      await registry.flush();
      expect(JSON.parse(readFileSync(join(jobs, `${job.id}.json`), 'utf8')).state).toBe(
        'succeeded',
      );
    } finally {
      registry.close();
    }
  });
});

describe('a running record of another process', () => {
  it('whose owner on this host is gone: failed with JOB_ABANDONED at once, written back, its lock released', async () => {
    const { root, jobs, lock } = repository();
    const pid = deadPid();
    write(jobs, runningRecord(ids(2), { owner: { host: HERE, pid } }));
    writeFileSync(lock, lockOf(ids(2)));
    const reader = JobRegistry.forRepository(new ModelRepository(root), { now: () => T0 });
    const job = await reader.get(ids(2));
    expect(job).toMatchObject({
      state: 'failed',
      phase: 'failed',
      owner: { host: HERE, pid },
      request_id: 'req-1',
      error: { code: 'JOB_ABANDONED' },
    });
    expect(job!.error!.message).toBe(
      `job ${ids(2)} was abandoned in phase "statistics (layer 1)": the process running it (host ${HERE}, pid ${pid}) no longer exists; nothing was published; the model lock is released, so a new recalibration may start`,
    );
    expect(JSON.parse(readFileSync(join(jobs, `${ids(2)}.json`), 'utf8'))).toEqual(job);
    expect(readdirSync(join(root, 'digits'))).toEqual([]);
  });

  it(`whose heartbeat is older than ${STALE_AFTER_MS} ms: failed; younger: still running`, async () => {
    const { root, jobs, lock } = repository();
    let now = T0;
    const reader = JobRegistry.forRepository(new ModelRepository(root), { now: () => now });
    write(jobs, runningRecord(ids(3), { heartbeat_at: iso(T0) }));
    writeFileSync(lock, lockOf(ids(3)));
    now = T0 + STALE_AFTER_MS; // exactly the bound: the owner may still be alive
    expect(await reader.get(ids(3))).toMatchObject({ state: 'running' });
    expect(readFileSync(lock, 'utf8')).toBe(lockOf(ids(3)));
    now = T0 + STALE_AFTER_MS + 1_000;
    const job = await reader.get(ids(3));
    expect(job).toMatchObject({ state: 'failed', error: { code: 'JOB_ABANDONED' } });
    expect(job!.error!.message).toContain(
      'the process running it (host another-host, pid 4242) has not shown a heartbeat for 31 s (bound 30 s)',
    );
    expect(readdirSync(join(root, 'digits'))).toEqual([]);
  });

  it(`whose heartbeat is more than ${STALE_AFTER_MS} ms ahead of this clock: failed, naming the clock`, async () => {
    const { root, jobs, lock } = repository();
    let now = T0;
    const reader = JobRegistry.forRepository(new ModelRepository(root), { now: () => now });
    write(jobs, runningRecord(ids(15), { heartbeat_at: iso(T0 + 86_400_000) }));
    writeFileSync(lock, lockOf(ids(15)));
    now = T0 + 86_400_000 - STALE_AFTER_MS; // within the bound: skew, the owner may be alive
    expect(await reader.get(ids(15))).toMatchObject({ state: 'running' });
    now = T0;
    const job = await reader.get(ids(15));
    expect(job).toMatchObject({ state: 'failed', error: { code: 'JOB_ABANDONED' } });
    expect(job!.error!.message).toContain(
      "shows a heartbeat 86400 s ahead of this host's clock (bound 30 s)",
    );
  });

  it('leaves a lock that another job holds now, and says when it died while publishing', async () => {
    const { root, jobs, lock } = repository();
    write(
      jobs,
      runningRecord(ids(4), { phase: 'publishing', owner: { host: HERE, pid: deadPid() } }),
    );
    writeFileSync(lock, lockOf(ids(5)));
    const job = await JobRegistry.forRepository(new ModelRepository(root)).get(ids(4));
    expect(job!.error!.message).toContain(
      'it stopped while publishing, so a new version may exist without this job knowing',
    );
    expect(readFileSync(lock, 'utf8')).toBe(lockOf(ids(5)));
  });

  it('of a live process (this one) stays running; a record written before owners existed goes by updated_at', async () => {
    const { root, jobs } = repository();
    // A job this process runs, read by another registry of it (two apps on one repository).
    const runner = JobRegistry.forRepository(new ModelRepository(root), { now: () => T0 });
    const running = runner.create('recalibration', 'digits', ids(6));
    await runner.flush();
    expect(running.owner).toMatchObject({ host: HERE, pid: process.pid });
    const {
      owner: _o,
      heartbeat_at: _h,
      ...legacy
    } = runningRecord(ids(7), {
      updated_at: iso(T0 - STALE_AFTER_MS - 1),
    });
    write(jobs, legacy as Job);
    const reader = JobRegistry.forRepository(new ModelRepository(root), { now: () => T0 });
    expect(await reader.get(ids(6))).toMatchObject({ state: 'running' });
    expect(await reader.get(ids(7))).toMatchObject({
      state: 'failed',
      error: { code: 'JOB_ABANDONED' },
    });
    runner.close();
  });

  it("naming this process's pid but created by no registry of it (an earlier process with the same pid: PID 1 of a restarted container): failed at once", async () => {
    const { root, jobs } = repository();
    write(jobs, runningRecord(ids(8), { owner: { host: HERE, pid: process.pid } }));
    const reader = JobRegistry.forRepository(new ModelRepository(root), { now: () => T0 });
    expect(await reader.get(ids(8))).toMatchObject({
      state: 'failed',
      error: { code: 'JOB_ABANDONED' },
    });
  });

  it('that is not a job record (malformed JSON, wrong fields) is not found', async () => {
    const { root, jobs } = repository();
    write(jobs, '{"id": "x"', `${ids(8)}.json`);
    write(jobs, JSON.stringify({ ...runningRecord(ids(9)), state: 'sleeping' }), `${ids(9)}.json`);
    const reader = JobRegistry.forRepository(new ModelRepository(root));
    expect(await reader.get(ids(8))).toBeUndefined();
    expect(await reader.get(ids(9))).toBeUndefined();
  });
});

describe('the sweep', () => {
  it(`deletes finished records ${JOB_RETENTION_MS / 86_400_000} days after their last change and settles abandoned ones`, async () => {
    const { root, jobs } = repository();
    const old = iso(T0 - JOB_RETENTION_MS - 1);
    const recent = iso(T0 - JOB_RETENTION_MS + 60_000);
    const finished = (n: number, state: 'succeeded' | 'failed', updated: string) =>
      write(jobs, { ...runningRecord(ids(n)), state, phase: 'done', updated_at: updated });
    finished(10, 'succeeded', old);
    finished(11, 'failed', old);
    finished(12, 'succeeded', recent);
    write(jobs, runningRecord(ids(13), { heartbeat_at: iso(T0 - STALE_AFTER_MS - 1) }));
    write(jobs, runningRecord(ids(14), { heartbeat_at: iso(T0 - 1_000) }));
    writeFileSync(join(jobs, '.tmp-host-1-abc-x.json'), 'partial');
    const reader = JobRegistry.forRepository(new ModelRepository(root), { now: () => T0 });
    await reader.sweep();
    expect(readdirSync(jobs).sort()).toEqual(
      ['.tmp-host-1-abc-x.json', `${ids(12)}.json`, `${ids(13)}.json`, `${ids(14)}.json`].sort(),
    );
    const settled = JSON.parse(readFileSync(join(jobs, `${ids(13)}.json`), 'utf8')) as Job;
    expect(settled).toMatchObject({ state: 'failed', error: { code: 'JOB_ABANDONED' } });
    expect(settled.updated_at).toBe(iso(T0));
    expect(JSON.parse(readFileSync(join(jobs, `${ids(14)}.json`), 'utf8')).state).toBe('running');
  });
});
