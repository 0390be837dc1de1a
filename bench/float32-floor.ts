/**
 * What a 256-row float32 predict costs beyond its transport: `npx tsx bench/float32-floor.ts
 * [rounds] [seconds]` loads the bare route of float32-floor-server.ts (Fastify reading the 64 KiB
 * body and answering 10 KiB, nothing else) and normserve (WORKERS=1, digits, this tree) with the
 * serving bench's float32 load (8 connections, float32 in and out), alternated round by round,
 * and prints each one's median req/s and the server's and the load generator's CPU per request.
 * The difference is what normserve adds: the engine (its GEMM runs at the WebAssembly peak, bench
 * section "Engine"), the input check, softmax, drift statistics, the log line and metrics.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { f32, http, requestBodies, start, startTree } from './http.js';

const [roundsArg, secondsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 3);
const seconds = Number(secondsArg ?? 4);
const { rows256 } = requestBodies();
const body = f32(rows256);
const headers = { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' };
const path = '/v1/models/digits:predict';

const repository = mkdtempSync(join(tmpdir(), 'normserve-float32-floor-'));
copyBundledModel('digits', repository);
const servers = {
  'bare route (transport floor)': await start(
    ['--import', 'tsx', 'bench/float32-floor-server.ts'],
    { PORT: '0' },
    join(repository, 'floor.log'),
  ),
  'normserve float32 predict': await startTree('.', repository, join(repository, 'server.log'), {
    GRPC_PORT: '0',
  }),
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results = new Map<string, { rps: number[]; server: number[]; client: number[] }>();
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} at the start`,
);
try {
  for (const server of Object.values(servers)) await http(server, path, body, headers, 1, 8);
  for (let round = 0; round < rounds; round++) {
    const order = Object.entries(servers);
    if (round % 2 === 1) order.reverse();
    for (const [name, server] of order) {
      const r = await http(server, path, body, headers, seconds, 8);
      const m = results.get(name) ?? { rps: [], server: [], client: [] };
      m.rps.push(r.requestsPerSecond);
      m.server.push(r.serverCpuUsPerRequest ?? Number.NaN);
      m.client.push(r.clientCpuUsPerRequest);
      results.set(name, m);
    }
  }
} finally {
  await Promise.all(Object.values(servers).map((s) => s.stop()));
  rmSync(repository, { recursive: true, force: true });
}
console.log('server                             req/s  server µs/req  client µs/req');
for (const [name, m] of results)
  console.log(
    `${name.padEnd(32)} ${String(Math.round(median(m.rps))).padStart(7)} ${median(m.server).toFixed(0).padStart(14)} ${median(m.client).toFixed(0).padStart(14)}`,
  );
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} at the end`,
);
