/**
 * A recalibration job whose process dies (SIGKILL, real WORKERS=2 server): another process reports
 * it failed with JOB_ABANDONED at its first read after the death (same host: the owner's pid is
 * gone; in any case within STALE_AFTER_MS of its last heartbeat), releases the model lock, and a
 * new recalibration of the model then succeeds. The job carries the request id and W3C trace of
 * the request that started it, into its record and into the log line of the process that settles it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { STALE_AFTER_MS } from '../../src/repository/index.js';
import { ADMIN_TOKEN } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import {
  digitsRepositoryCopy,
  freshRequest,
  killServersAfterEach,
  listeningPort,
  servingEnv,
  slowUpload,
  startServer,
} from '../helpers/server-process.js';

killServersAfterEach();

const night = nightShift(digitsTestRows().x).slice(0, 60);
const ndjson = `${night.map((r) => JSON.stringify(r)).join('\n')}\n`;
const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}` };
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const REQUEST_ID = 'proxy-req-0001';

interface JobBody {
  id: string;
  state: string;
  phase: string;
  owner?: { host: string; pid: number };
  heartbeat_at?: string;
  request_id?: string;
  trace_id?: string;
  parent_id?: string;
  error?: { code: string; message: string };
}

async function poll<T>(check: () => T | undefined, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a recalibration job whose process is SIGKILLed', () => {
  it('is reported failed (JOB_ABANDONED) by another process, its lock released, and the model recalibrates again', async () => {
    const repository = digitsRepositoryCopy('job-abandoned');
    const server = startServer(servingEnv(repository, '2'));
    const port = await listeningPort(server, 2);

    // An NDJSON upload that stops half-way: its job is running (phase "receiving") in the worker
    // that took the connection, holding the model's lock.
    const upload = slowUpload(port, '/v1/models/digits:recalibrate', ndjson, {
      ...AUTH,
      'content-type': 'application/x-ndjson',
      'x-request-id': REQUEST_ID,
      traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
    });
    upload.response.catch(() => undefined); // its connection dies with the worker
    await upload.started;
    const jobsDir = join(repository, '.jobs');
    const lockFile = join(repository, 'digits', '.recalibration.lock');
    const jobId = await poll(() => {
      const names = existsSync(jobsDir)
        ? readdirSync(jobsDir).filter((n) => /^[0-9a-f-]{36}\.json$/.test(n))
        : [];
      return names.length === 1 && existsSync(lockFile) ? names[0]!.slice(0, -5) : undefined;
    }, 'the job record and the lock');
    expect(JSON.parse(readFileSync(lockFile, 'utf8')).owner).toBe(jobId);

    const running = await freshRequest(port, 'GET', `/v1/jobs/${jobId}`, { headers: AUTH });
    expect(running.status, running.body).toBe(200);
    const job = JSON.parse(running.body) as JobBody;
    expect(job).toMatchObject({
      state: 'running',
      phase: 'receiving',
      request_id: REQUEST_ID,
      trace_id: TRACE_ID,
      parent_id: PARENT_ID,
    });
    const owner = job.owner!;
    expect(Date.parse(job.heartbeat_at!)).toBeGreaterThan(0);
    // The owner is one of the two workers (both logged their pid when they started listening).
    const workerPids = server.logs
      .filter((l) => /^Server listening/.test(l.msg ?? ''))
      .map((l) => l.pid);
    expect(workerPids).toContain(owner.pid);

    const killedAt = Date.now();
    process.kill(owner.pid, 'SIGKILL');
    // The primary has reaped the worker (its pid no longer exists) once it logs its death.
    await server.waitForLog((l) => l.msg === 'worker died; starting a new one', 'worker died');

    // The first read by another process (the surviving worker or the replacement) settles it.
    const read = await freshRequest(port, 'GET', `/v1/jobs/${jobId}`, { headers: AUTH });
    const reportedAt = Date.now();
    expect(read.status, read.body).toBe(200);
    const failed = JSON.parse(read.body) as JobBody;
    expect(failed).toMatchObject({
      id: jobId,
      state: 'failed',
      phase: 'failed',
      owner,
      request_id: REQUEST_ID,
      trace_id: TRACE_ID,
      error: { code: 'JOB_ABANDONED' },
    });
    expect(failed.error!.message).toContain(`pid ${owner.pid}`);
    expect(failed.error!.message).toContain('no longer exists');
    expect(reportedAt - killedAt).toBeLessThan(STALE_AFTER_MS);
    // Written back for every process, and the lock it held released.
    expect(JSON.parse(readFileSync(join(jobsDir, `${jobId}.json`), 'utf8'))).toMatchObject({
      state: 'failed',
      error: { code: 'JOB_ABANDONED' },
    });
    expect(existsSync(lockFile)).toBe(false);
    const settled = await server.waitForLog(
      (l) => l.msg === 'recalibration job abandoned by its process',
      'the abandonment log line',
    );
    expect(settled).toMatchObject({ job: jobId, request_id: REQUEST_ID, trace_id: TRACE_ID });
    expect(settled.pid).not.toBe(owner.pid);

    // The model is free: a new recalibration succeeds.
    const again = await freshRequest(port, 'POST', '/v1/models/digits:recalibrate', {
      headers: AUTH,
      body: JSON.stringify({ instances: night }),
    });
    expect(again.status, again.body).toBe(201);
    expect(JSON.parse(again.body)).toMatchObject({ version: 2, parent_version: 1, samples: 60 });
  }, 120_000);
});
