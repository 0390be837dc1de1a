/**
 * The 409 of a model being recalibrated says who holds it, truthfully. The recalibrate CLI keeps
 * its job in its own memory, so a server cannot answer GET /v1/jobs/{id} for it: its lock records
 * the program (`"cli": "recalibrate"`), and the 409 names that process (pid, host, since when)
 * and no job id. A lock held by a server's job (this process, or a replica sharing the
 * repository) still names the job, which GET /v1/jobs/{id} finds.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelDirectory, UNKNOWN_LOCK_OWNER } from '../../src/repository/index.js';
import { ModelRegistry, RecalibrationService } from '../../src/service/index.js';
import { recalibrationInProgress } from '../../src/service/recalibration-service.js';
import { ADMIN, expectProblem } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

const night = nightShift(digitsTestRows().x);
const LOCK = '.recalibration.lock';

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' } });
});
afterAll(async () => {
  await t.close();
});

const recalibrateOverHttp = () =>
  t.app.inject({
    method: 'POST',
    url: '/v1/models/digits:recalibrate',
    headers: ADMIN,
    payload: { instances: night },
  });

const getJob = (id: string) =>
  t.app.inject({ method: 'GET', url: `/v1/jobs/${id}`, headers: ADMIN });

const readLock = () =>
  JSON.parse(readFileSync(join(t.repository, 'digits', LOCK), 'utf8')) as Record<string, unknown>;

describe('who holds the model: the 409 says', () => {
  it('the recalibrate CLI (its service, as the CLI builds it): the program, pid, host and time, no job id', async () => {
    const opened = await loadModelDirectory(join(t.repository, 'digits'));
    const registry = new ModelRegistry(t.repository, { maxBatchSize: 4096 });
    await registry.openVersion(opened.name, opened.version, opened.checkpoint);
    const cli = RecalibrationService.forRepository(registry, {
      maxSamples: Number.MAX_SAFE_INTEGER,
      jobRecords: 'memory',
      cli: 'recalibrate',
    });
    const session = await cli.begin({ model: 'digits', mode: 'exact', activate: true });
    try {
      const lock = readLock();
      expect(lock).toMatchObject({
        owner: session.job.id,
        cli: 'recalibrate',
        pid: process.pid,
        host: hostname(),
      });
      const res = await recalibrateOverHttp();
      const problem = expectProblem(res, 409, 'RECALIBRATION_IN_PROGRESS');
      expect(problem.detail).toBe(
        `model "digits" is being recalibrated by the recalibrate CLI (pid ${process.pid} on host ${hostname()}, since ${lock.acquired_at}), not by a server job; retry when it has finished`,
      );
      expect(problem.holder).toEqual({
        cli: 'recalibrate',
        host: hostname(),
        pid: process.pid,
        since: lock.acquired_at,
      });
      expect(problem).not.toHaveProperty('job_id');
      expect(problem).not.toHaveProperty('job');
      // The CLI's job id is named nowhere: no server could find it.
      expect(res.body).not.toContain(session.job.id);
      expect((await getJob(session.job.id)).statusCode).toBe(404);
    } finally {
      await session.fail(new Error('the test is over'));
      await cli.close();
      registry.close();
    }
    // Released: the server recalibrates now.
    expect((await recalibrateOverHttp()).statusCode).toBe(201);
  });

  it('a lock file as a CLI of another live process writes it: that process, no job id', async () => {
    // A live process of this host that is not this one (the lock is not broken as a dead one's).
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
      stdio: 'ignore',
    });
    const owner = randomUUID();
    const acquiredAt = new Date().toISOString();
    const path = join(t.repository, 'digits', LOCK);
    try {
      const { pid } = other;
      if (pid === undefined) throw new Error('no child process');
      writeFileSync(
        path,
        JSON.stringify({
          owner,
          host: hostname(),
          pid,
          acquired_at: acquiredAt,
          cli: 'recalibrate',
        }),
      );
      const res = await recalibrateOverHttp();
      const problem = expectProblem(res, 409, 'RECALIBRATION_IN_PROGRESS');
      expect(problem.detail).toContain(
        `by the recalibrate CLI (pid ${pid} on host ${hostname()}, since ${acquiredAt})`,
      );
      expect(problem.holder).toEqual({
        cli: 'recalibrate',
        host: hostname(),
        pid,
        since: acquiredAt,
      });
      expect(res.body).not.toContain(owner);
      expect(readLock().owner).toBe(owner); // left to its holder
    } finally {
      other.kill();
    }
  });

  it('a job of a replica sharing the repository: the job, which GET /v1/jobs/{id} finds', async () => {
    const registry = new ModelRegistry(t.repository, { maxBatchSize: 4096 });
    await registry.refresh();
    const replica = RecalibrationService.forRepository(registry, { maxSamples: 100_000 });
    const session = await replica.begin({ model: 'digits', mode: 'exact', activate: true });
    try {
      await replica.jobs.flush(); // its record is in .jobs/
      expect(readLock()).not.toHaveProperty('cli');
      const problem = expectProblem(await recalibrateOverHttp(), 409, 'RECALIBRATION_IN_PROGRESS');
      expect(problem.job_id).toBe(session.job.id);
      expect(problem.job).toBe(`/v1/jobs/${session.job.id}`);
      expect(problem.detail).toContain(`by job ${session.job.id}`);
      expect(problem).not.toHaveProperty('holder');
      const job = await getJob(session.job.id);
      expect(job.statusCode, job.body).toBe(200);
      expect(job.json()).toMatchObject({ id: session.job.id, model: 'digits', state: 'running' });
    } finally {
      await session.fail(new Error('the test is over'));
      await replica.close();
      registry.close();
    }
  });
});

describe('a lock whose file cannot be read', () => {
  it('names no job (none can be looked up) and says why the holder is unknown', () => {
    const error = recalibrationInProgress('digits', { owner: UNKNOWN_LOCK_OWNER });
    expect(error.code).toBe('RECALIBRATION_IN_PROGRESS');
    expect(error.message).toBe(
      'model "digits" is held by another process whose lock file cannot be read now; retry later',
    );
    expect(error.extra).toEqual({});
  });
});
