/**
 * How long Kubernetes' probes wait behind inference: starts the built server (`node
 * dist/cli/server.js`, run `npm run build` first) with WORKERS (default 1) and any other variable
 * of the environment it is given, runs CLIENTS (default 8) keep-alive clients posting ROWS
 * (default 1024) seeded digits-cnn images per request for SECONDS (default 20), and meanwhile GETs
 * /healthz and /readyz on a new connection every 250 ms without waiting for the previous answer,
 * as the kubelet does; prints the latency percentiles of the posts and of each probe.
 *
 *   npm run build && npx tsx bench/probes-under-load.ts
 *   WORKERS=2 CLIENTS=16 npx tsx bench/probes-under-load.ts
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { copyBundledModel } from '../test/helpers/bundled-models.js';

const CLIENTS = Number(process.env.CLIENTS ?? 8);
const ROWS = Number(process.env.ROWS ?? 1024);
const SECONDS = Number(process.env.SECONDS ?? 20);
const PROBE_PERIOD_MS = 250;

/** A 32-bit linear congruential generator (Numerical Recipes' constants): seeded pixels 0–16. */
let seed = 12345;
const pixel = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed % 17;
};
const image = () =>
  [Array.from({ length: 8 }, () => Array.from({ length: 8 }, pixel))] as number[][][];
const body = Buffer.from(JSON.stringify({ instances: Array.from({ length: ROWS }, image) }));

const repository = mkdtempSync(join(tmpdir(), 'normserve-probes-'));
copyBundledModel('digits-cnn', repository);
const server = spawn(process.execPath, ['dist/cli/server.js'], {
  env: {
    WORKERS: '1',
    ...process.env,
    PORT: '0',
    GRPC_PORT: '0',
    LOG_LEVEL: 'info',
    MODEL_REPOSITORY: repository,
  },
  stdio: ['ignore', 'pipe', 'inherit'],
});
/** The request log's durationMs of each /healthz: the time inside the app, from onRequest on. */
const inApp: number[] = [];
const port = await new Promise<number>((resolve) => {
  createInterface({ input: server.stdout! }).on('line', (line) => {
    const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
    if (m) resolve(Number(m[1]));
    if (!line.includes('"route":"/healthz"')) return;
    const { durationMs } = JSON.parse(line) as { durationMs?: number };
    if (durationMs !== undefined) inApp.push(durationMs);
  });
});

type Outcome = [status: string, ms: number];
const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
const post = () =>
  new Promise<Outcome>((resolve) => {
    const t = performance.now();
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/models/digits-cnn:predict',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve([String(res.statusCode), performance.now() - t]));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve([e.code ?? 'error', performance.now() - t]),
    );
    req.end(body);
  });
const probe = (path: string) =>
  new Promise<Outcome>((resolve) => {
    const t = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve([String(res.statusCode), performance.now() - t]));
    });
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve([e.code ?? 'error', performance.now() - t]),
    );
  });

const end = Date.now() + SECONDS * 1000;
const posts: Outcome[] = [];
const probes: Record<string, Outcome[]> = { '/healthz': [], '/readyz': [] };
const client = async () => {
  while (Date.now() < end) posts.push(await post());
};
const prober = async () => {
  // Once every client has a request in progress.
  await new Promise((r) => setTimeout(r, 1000));
  const pending: Promise<unknown>[] = [];
  while (Date.now() < end) {
    for (const [path, outcomes] of Object.entries(probes))
      pending.push(probe(path).then((o) => outcomes.push(o)));
    await new Promise((r) => setTimeout(r, PROBE_PERIOD_MS));
  }
  await Promise.all(pending);
};
await Promise.all([...Array.from({ length: CLIENTS }, client), prober()]);

const summary = (outcomes: Outcome[]) => {
  const ms = outcomes.map((o) => o[1]).sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!.toFixed(0);
  const statuses: Record<string, number> = {};
  for (const [s] of outcomes) statuses[s] = (statuses[s] ?? 0) + 1;
  return `n=${ms.length} p50=${at(0.5)} p90=${at(0.9)} p99=${at(0.99)} max=${ms.at(-1)!.toFixed(0)} ms ${JSON.stringify(statuses)}`;
};
console.log(`WORKERS=${process.env.WORKERS ?? 1} CLIENTS=${CLIENTS} ROWS=${ROWS} ${SECONDS} s`);
console.log(`POST     ${summary(posts)}`);
for (const [path, outcomes] of Object.entries(probes))
  console.log(`${path.padEnd(8)} ${summary(outcomes)}`);
const sorted = inApp.sort((a, b) => a - b);
const inAppAt = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
console.log(
  `/healthz in the app (request log durationMs): p50=${inAppAt(0.5)} p99=${inAppAt(0.99)} max=${sorted.at(-1)} ms`,
);
agent.destroy();
server.kill('SIGTERM');
await new Promise((r) => server.once('exit', r));
rmSync(repository, { recursive: true, force: true });
