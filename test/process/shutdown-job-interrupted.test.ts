/**
 * A recalibration job still running when the drain's budget runs out (review31: the process was
 * killed by close-with-grace's timeout with one line, `killed by timeout (10000ms)`, naming no job,
 * and the job's record said `running` until another process read it). The real server, WORKERS=1
 * and WORKERS=2 (the primary relays the signal; the worker's own budget acts): the job is held by
 * its upload, which the test never finishes, so it runs whatever the machine's speed. At the budget
 * (SHUTDOWN_TIMEOUT_MS less the settle reserve, src/cli/shutdown-budget.ts) the job is settled
 * failed JOB_INTERRUPTED — record, lock, a warning naming it — the request answered 503, and the
 * process exits 1 before the drain's own timeout.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import {
  digitsRepositoryCopy,
  exitWithin,
  killServersAfterEach,
  listeningPort,
  servingEnv,
  slowUpload,
  startServer,
} from '../helpers/server-process.js';

killServersAfterEach();

const night = nightShift(digitsTestRows().x).slice(0, 60);
const ndjson = `${night.map((r) => JSON.stringify(r)).join('\n')}\n`;

async function poll<T>(check: () => T | undefined, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a recalibration job cut by the shutdown budget', () => {
  for (const workers of ['1', '2']) {
    it(`WORKERS=${workers}: is recorded failed JOB_INTERRUPTED and logged by id before the process exits 1`, async () => {
      const repository = digitsRepositoryCopy('shutdown-job-interrupted');
      const server = startServer(servingEnv(repository, workers, { SHUTDOWN_TIMEOUT_MS: '4000' }));
      const port = await listeningPort(server, Number(workers));
      const upload = slowUpload(port, '/v1/models/digits:recalibrate', ndjson, {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        'content-type': 'application/x-ndjson',
        prefer: 'respond-async',
      });
      await upload.started;
      const jobsDir = join(repository, '.jobs');
      const lockFile = join(repository, 'digits', '.recalibration.lock');
      const jobId = await poll(() => {
        const names = existsSync(jobsDir)
          ? readdirSync(jobsDir).filter((n) => /^[0-9a-f-]{36}\.json$/.test(n))
          : [];
        return names.length === 1 && existsSync(lockFile) ? names[0]!.slice(0, -5) : undefined;
      }, 'the job record and the lock');

      server.child.kill('SIGTERM');
      const reply = await upload.response;
      const { code, signal } = await exitWithin(server, 60_000);

      expect(reply.status, reply.body).toBe(503);
      expect(JSON.parse(reply.body)).toMatchObject({ code: 'JOB_INTERRUPTED' });
      expect(reply.headers['retry-after']).toBe('1');
      const record = JSON.parse(readFileSync(join(jobsDir, `${jobId}.json`), 'utf8'));
      expect(record).toMatchObject({
        state: 'failed',
        phase: 'failed',
        error: { code: 'JOB_INTERRUPTED' },
      });
      expect(record.error.message).toContain(
        `job ${jobId} was interrupted by the server's shutdown in phase "receiving"`,
      );
      expect(existsSync(lockFile), 'the model lock is released').toBe(false);
      const interrupted = server.logs.filter(
        (l) => l.msg === 'recalibration job interrupted by shutdown: nothing published',
      );
      expect(interrupted).toEqual([
        expect.objectContaining({ level: 40, job: jobId, model: 'digits', phase: 'receiving' }),
      ]);
      expect(server.logs.map((l) => l.msg)).toContain(
        'stopped: recalibration jobs were interrupted by the shutdown budget; exiting 1',
      );
      // Settled before the drain's own timeout, which would have named no job.
      expect(server.logs.map((l) => l.msg)).not.toContain(
        'the drain did not end within SHUTDOWN_TIMEOUT_MS: exiting 1',
      );
      expect({ code, signal }, server.stderr()).toEqual({ code: 1, signal: null });
    });
  }
});
