/**
 * The workers of one WORKERS=2 server serve one version: once an admin call that changes what a
 * model serves has returned — a recalibration published with activate, `:activate` (rollback), a
 * version deleted — every later request, whichever worker accepts it, sees the change
 * (src/cli/cluster-models.ts). The repository poll is set to a minute, so it cannot be what
 * carries the change; separate replicas (two-replicas.test.ts) do follow by polling.
 *
 * The predictions after each call go over fresh connections, several at a time, until both workers
 * have answered some of them (their request log lines, by pid): a run that reached one worker only
 * would prove nothing, and fails instead.
 */
import { rmSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN } from '../helpers/app.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import {
  freshRequest,
  killServers,
  type LogLine,
  listeningPort,
  type Server,
  servingEnv,
  startServer,
} from '../helpers/server-process.js';
import { makeTempDir } from '../helpers/temp-files.js';

/** Predictions per round after each change; rounds go on until both workers answered. */
const ROUND = 40;
const CONCURRENCY = 4;
/** Generous: on a busy machine the kernel may hand many connections in a row to one worker. */
const MAX_ROUNDS = 10;
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
const rows = digitsTestRows().x;

const temps: string[] = [];
afterEach(killServers);
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const predictLines = (server: Server, from: number, url: string): LogLine[] =>
  server.logs.slice(from).filter((l) => l.msg === 'request' && l.url === url);

/**
 * Rounds of ROUND predictions on `url` (fresh connections, CONCURRENCY at a time) until both
 * workers answered some; every answer is checked by `expectAnswer`. Returns the pids that answered.
 */
async function predictOnBothWorkers(
  server: Server,
  port: number,
  url: string,
  expectAnswer: (status: number, version: string | undefined, body: string) => void,
): Promise<Set<number>> {
  const mark = server.logs.length;
  const before = predictLines(server, 0, url).length;
  let sent = 0;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let next = 0;
    const client = async () => {
      while (next < ROUND) {
        const i = sent + next++;
        const body = JSON.stringify({ instances: [rows[i % rows.length]] });
        const res = await freshRequest(port, 'POST', url, { body });
        const version = res.headers['x-model-version'];
        expectAnswer(res.status, typeof version === 'string' ? version : undefined, res.body);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, client));
    sent += ROUND;
    // Every request's log line (written after its response) names the worker that answered it.
    await server.waitForLog((l) => l.msg === 'request' && l.url === url, `${sent} request lines`, {
      count: before + sent,
    });
    const pids = new Set(predictLines(server, mark, url).map((l) => l.pid as number));
    if (pids.size === 2) return pids;
  }
  throw new Error(`${sent} predictions on fresh connections all reached one worker`);
}

describe('a WORKERS=2 server serves one version', () => {
  it('on every worker as soon as :recalibrate, :activate or a version delete returned', async () => {
    const repository = makeTempDir('one-server-one-version');
    temps.push(repository);
    copyBundledModel('digits', repository);
    const server = startServer(servingEnv(repository, '2', { MODEL_POLL_INTERVAL_MS: '60000' }));
    const port = await listeningPort(server, 2);
    const predict = '/v1/models/digits:predict';

    // Both workers serve version 1 (and have told the primary they are ready: they answer).
    await predictOnBothWorkers(server, port, predict, (status, version, body) => {
      expect(status, body).toBe(200);
      expect(version).toBe('1');
    });

    // A recalibration, activated: version 2 everywhere once the call returned.
    const recalibrated = await freshRequest(port, 'POST', '/v1/models/digits:recalibrate', {
      body: JSON.stringify({ instances: nightShift(rows), note: 'night camera' }),
      headers: ADMIN,
    });
    expect(recalibrated.status, recalibrated.body).toBe(201);
    expect(JSON.parse(recalibrated.body)).toMatchObject({ version: 2, activated: true });
    await predictOnBothWorkers(server, port, predict, (status, version, body) => {
      expect(status, body).toBe(200);
      expect(version, 'served after the recalibration returned').toBe('2');
    });

    // Rollback: version 1 everywhere once the call returned.
    const rolledBack = await freshRequest(port, 'POST', '/v1/models/digits/versions/1:activate', {
      body: JSON.stringify({ note: 'rollback' }),
      headers: ADMIN,
    });
    expect(rolledBack.status, rolledBack.body).toBe(200);
    expect(JSON.parse(rolledBack.body)).toMatchObject({ active_version: 1 });
    await predictOnBothWorkers(server, port, predict, (status, version, body) => {
      expect(status, body).toBe(200);
      expect(version, 'served after the rollback returned').toBe('1');
    });

    // Version 2 deleted: no worker serves it any more, even when asked for it by number.
    const deleted = await freshRequest(port, 'DELETE', '/v1/models/digits/versions/2', {
      headers: { authorization: ADMIN.authorization },
    });
    expect(deleted.status, deleted.body).toBe(200);
    await predictOnBothWorkers(server, port, '/v1/models/digits/versions/2:predict', (status) => {
      expect(status, 'version 2 after its delete returned').toBe(404);
    });

    // Each change was confirmed by the other worker, none left out.
    expect(server.logs.filter((l) => /did not confirm|were not told/.test(l.msg ?? ''))).toEqual(
      [],
    );
  });
});
