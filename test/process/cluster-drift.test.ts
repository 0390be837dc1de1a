/**
 * Live drift on a WORKERS=2 server (real processes) is the server's, not a worker's: each worker
 * sees only the connections it accepted, shares what it saw and merges the other's
 * (cli/cluster-drift.ts), so GET /v1/models/{name}/drift counts every request whichever worker
 * answers, and so does the normserve_drift_rows gauge; AUTO_RECALIBRATE=promote is acted on by one
 * worker only — one automatic version is published, one recommendation logged — from a sample of
 * both workers' traffic (the default AUTO_RECALIBRATE_MIN_ROWS, 512, reached by the cluster's
 * rows, not the decider's), within 1,000 night requests of one row, and both workers then serve
 * it. Assertions poll with generous bounds (shares travel every second).
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Rng } from '../../src/nn/index.js';
import {
  type DriftReport,
  ModelRegistry,
  PICTURE_SAMPLE_ROWS,
  runBatch,
} from '../../src/service/index.js';
import { copyBundledRepository } from '../helpers/bundled-models.js';
import { digitsImage, digitsTestRows, nightShift } from '../helpers/digits.js';
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

const CLEAN_REQUESTS = 300;
/**
 * Clean requests sent at most: more rounds of CLEAN_REQUESTS while one worker has taken them all
 * (the workers accept from one socket, SCHED_NONE: on a loaded machine the kernel may wake the
 * same one every time).
 */
const MAX_CLEAN_REQUESTS = 3000;
/** Night requests sent at most; the bound for the promotion. */
const NIGHT_REQUESTS = 1000;
/** Night requests sent between two looks at the server's log for the promotion. */
const NIGHT_ROUND = 20;
/** Reads in a row that must all agree (each on a fresh connection: either worker answers). */
const AGREEING_READS = 6;

const temps: string[] = [];
afterEach(killServers);
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function predictions(
  port: number,
  model: string,
  samples: unknown[],
  concurrency: number,
): Promise<void> {
  let next = 0;
  const client = async () => {
    while (next < samples.length) {
      const body = JSON.stringify({ instances: [samples[next++]] });
      const res = await freshRequest(port, 'POST', `/v1/models/${model}:predict`, { body });
      expect(res.status, res.body).toBe(200);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
}

async function driftReport(port: number, model: string): Promise<DriftReport> {
  const res = await freshRequest(port, 'GET', `/v1/models/${model}/drift`);
  expect(res.status, res.body).toBe(200);
  return JSON.parse(res.body) as DriftReport;
}

/** Polls until AGREEING_READS reports in a row satisfy `ok`; fails after `timeoutMs`. */
async function untilAgreed(
  port: number,
  model: string,
  ok: (r: DriftReport) => boolean,
  what: string,
  timeoutMs = 180_000,
): Promise<DriftReport> {
  const deadline = Date.now() + timeoutMs;
  let streak = 0;
  let last: DriftReport | undefined;
  while (streak < AGREEING_READS) {
    if (Date.now() > deadline || timeoutMs < 0)
      throw new Error(`timed out waiting for ${what}; last report ${JSON.stringify(last)}`);
    last = await driftReport(port, model);
    if (ok(last)) streak++;
    else {
      streak = 0;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return last!;
}

const lines = (server: Server, msg: string) => server.logs.filter((l: LogLine) => l.msg === msg);

describe('live drift on a WORKERS=2 server', () => {
  it('counts the traffic of both workers; one worker recalibrates from traffic, both serve the result', async () => {
    const repository = makeTempDir('cluster-drift');
    temps.push(repository);
    copyBundledRepository(repository);
    const server = startServer(
      servingEnv(repository, '2', { MODEL_POLL_INTERVAL_MS: '200', AUTO_RECALIBRATE: 'promote' }),
    );
    const port = await listeningPort(server, 2);
    const rng = new Rng(1818);
    const { x, y } = digitsTestRows();
    // Clean traffic to the CNN (never recommended), night traffic to the MLP: the MLP's traffic
    // sample then holds night rows only, as in test/drift/auto-recalibrate.test.ts.
    const servedCnn = () =>
      new Set(
        server.logs
          .filter((l) => l.msg === 'request' && l.model === 'digits-cnn')
          .map((l) => l.pid),
      );
    let cleanSent = 0;
    do {
      const clean = Array.from({ length: CLEAN_REQUESTS }, () =>
        digitsImage(x[rng.int(x.length)]!),
      );
      await predictions(port, 'digits-cnn', clean, 8);
      cleanSent += CLEAN_REQUESTS;
    } while (servedCnn().size < 2 && cleanSent < MAX_CLEAN_REQUESTS);

    // Both workers served some of them (fresh connections, each accepted by a free worker) …
    expect(servedCnn().size).toBe(2);
    // … and every drift report, whichever worker answers, counts all of them.
    const report = await untilAgreed(
      port,
      'digits-cnn',
      (r) => r.active?.rows === cleanSent,
      `${cleanSent} rows in every drift report`,
    );
    expect(report.active!.recommended).toBe(false);
    // The before/after-BatchNorm pictures too: drawn, whichever worker answers, from the recent
    // rows of both (each keeps its last PICTURE_SAMPLE_ROWS), not from the answering worker's.
    const servedBy = new Map<unknown, number>();
    for (const l of server.logs)
      if (l.msg === 'request' && l.model === 'digits-cnn' && typeof l.rows === 'number')
        servedBy.set(l.pid, (servedBy.get(l.pid) ?? 0) + l.rows);
    const recentRows = [...servedBy.values()].reduce(
      (n, count) => n + Math.min(count, PICTURE_SAMPLE_ROWS),
      0,
    );
    for (let i = 0; i < AGREEING_READS; i++) {
      const res = await freshRequest(port, 'GET', '/v1/models/digits-cnn/drift/layers');
      expect(res.status, res.body).toBe(200);
      expect((JSON.parse(res.body) as { rows: number }).rows).toBe(recentRows);
    }
    const metrics = await freshRequest(port, 'GET', '/metrics');
    expect(metrics.body).toMatch(
      new RegExp(`^normserve_drift_rows\\{model="digits-cnn",version="1"\\} ${cleanSent}$`, 'm'),
    );

    // Night traffic, one row per request: the drift is recommended, and one worker alone acts on
    // it, from both workers' samples. Rounds of requests until the decision is logged; then no
    // more requests while it publishes (how many would arrive meanwhile is a matter of request
    // rate and machine load, not of the sample), until the promotion is logged.
    const night = nightShift(x);
    let sent = 0;
    while (
      sent < NIGHT_REQUESTS &&
      lines(server, 'drift: recalibrating from traffic').length === 0
    ) {
      const round = Array.from({ length: NIGHT_ROUND }, () => night[rng.int(night.length)]!);
      await predictions(port, 'digits', round, 4);
      sent += NIGHT_ROUND;
    }
    const promotedLine = await server.waitForLog(
      (l) => l.msg === 'drift: recalibrated from traffic and promoted',
      'the promotion',
      { timeoutMs: 180_000 },
    );
    const decided = lines(server, 'drift: recalibrating from traffic');
    console.log(
      `WORKERS=2, AUTO_RECALIBRATE=promote: decision logged after ${sent} night requests (rounds of ${NIGHT_ROUND}), promoted ${Number(promotedLine.time) - Number(decided[0]?.time)} ms later; ${JSON.stringify(decided[0])}`,
    );
    expect(lines(server, 'drift: recalibrated from traffic and promoted')).toHaveLength(1);
    expect(sent).toBeLessThanOrEqual(NIGHT_REQUESTS);
    // Both workers' samples, none left out; the decider alone held about half of them.
    expect(decided[0]).toMatchObject({ model: 'digits', workers: 2, leftOut: [] });
    expect(decided[0]!.rows as number).toBeGreaterThanOrEqual(512);
    expect(decided[0]!.trafficRows as number).toBeLessThanOrEqual(sent);
    // The other worker's rows are in it (the decider's own are a part of the traffic).
    expect(decided[0]!.deciderTrafficRows as number).toBeLessThan(
      decided[0]!.trafficRows as number,
    );
    const promoted = await untilAgreed(
      port,
      'digits',
      (r) =>
        r.active_version === 2 &&
        r.auto_recalibration.last_action?.action === 'promote' &&
        r.auto_recalibration.last_action.version === 2,
      'version 2 promoted, seen by every worker',
    );
    expect(promoted.auto_recalibration.last_action!.outcome).toBe('succeeded');
    expect(lines(server, 'drift: recalibration recommended')).toHaveLength(1);
    expect(lines(server, 'drift: recalibrating from traffic')).toHaveLength(1);
    expect(lines(server, 'drift: recalibrated from traffic and promoted')).toHaveLength(1);
    const versions = (model: string) =>
      readdirSync(join(repository, model))
        .filter((d) => /^\d+$/.test(d))
        .sort();
    expect(versions('digits')).toEqual(['1', '2']);
    expect(versions('digits-cnn')).toEqual(['1']);
    const config = JSON.parse(readFileSync(join(repository, 'digits', '2', 'config.json'), 'utf8'));
    expect(config.provenance).toMatchObject({ source: 'traffic', parent_version: 1 });
    // Night accuracy of version 1 and of the new version, computed on the versions (not traffic).
    const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
    await registry.refresh();
    const accuracy = (version: number) => {
      const served = registry.resolve('digits', version);
      const out = runBatch(served, Float32Array.from(night.flat()), night.length);
      return out.labels!.filter((l, i) => Number(l) === y[i]).length / y.length;
    };
    const [before, after] = [accuracy(1), accuracy(2)];
    console.log(`night accuracy: version 1 ${before.toFixed(4)}, version 2 ${after.toFixed(4)}`);
    expect(before).toBeLessThan(0.35);
    expect(after).toBeGreaterThanOrEqual(0.93);
    registry.close();
    // Both workers loaded and serve version 2.
    for (let i = 0; i < AGREEING_READS; i++) {
      const res = await freshRequest(port, 'POST', '/v1/models/digits:predict', {
        body: JSON.stringify({ instances: [night[i]] }),
      });
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).model_version).toBe(2);
    }
  }, 480_000);
});
