/**
 * Two source trees' servers side by side: `npx tsx bench/ab-trees.ts BASE_TREE [rounds] [seconds]
 * [load,load…]`
 * starts this tree's server and BASE_TREE's (a git worktree of another commit, with node_modules)
 * on the same model repository, and alternates the serving bench's loads between them, round by
 * round in alternating order, so both see the same machine. Prints, per load, the median req/s
 * and server CPU per request of each tree and this tree's / the base's req/s. For a change whose
 * effect one run's load drift would hide (bench/README.md, the async engine calls of issue 11).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { publishCheckpoint } from '../src/service/index.js';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import {
  f32,
  freePort,
  grpcInfer,
  http as measuredHttp,
  requestBodies,
  type Server,
  startTree,
} from './http.js';
import { wideCheckpoint } from './models.js';

const [baseArg, roundsArg, secondsArg, onlyArg] = process.argv.slice(2);
if (!baseArg)
  throw new Error('usage: tsx bench/ab-trees.ts BASE_TREE [rounds] [seconds] [load,load…]');
/** Loads whose name contains one of these (all by default). */
const only = onlyArg?.split(',');
/**
 * AB_THIS_ENV=KEY=VALUE,… is set for this tree's servers only: with BASE_TREE `.` it compares two
 * settings of one tree (AB_THIS_ENV=ENGINE_ASYNC=on).
 */
const thisEnv = Object.fromEntries(
  (process.env.AB_THIS_ENV ?? '')
    .split(',')
    .filter((kv) => kv.includes('='))
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const trees = { base: resolve(baseArg), this: process.cwd() };
const rounds = Number(roundsArg ?? 4);
const seconds = Number(secondsArg ?? 5);

const repository = mkdtempSync(join(tmpdir(), 'normserve-ab-'));
const logs = mkdtempSync(join(tmpdir(), 'normserve-ab-logs-'));
copyBundledModel('digits', repository);
await publishCheckpoint(repository, wideCheckpoint());

let logCount = 0;
/** A server of `tree` (spawned from that directory, so it runs that tree's sources). */
const serve = (tree: string, env: Record<string, string>): Promise<Server> =>
  startTree(tree, repository, join(logs, `server-${++logCount}.log`), env);

const json = { 'content-type': 'application/json' };
const octet = { 'content-type': 'application/octet-stream' };
const { jsonBody, rows256, oipHeader, wideRow } = requestBodies();

interface Figure {
  rps: number;
  cpu: number | undefined;
  p99: number;
}
type Load = (server: Server, grpcPort: number) => Promise<Figure>;

const http =
  (path: string, body: string | Buffer, headers: Record<string, string>, connections: number) =>
  async (server: Server): Promise<Figure> => {
    const r = await measuredHttp(server, path, body, headers, seconds, connections);
    if (r.errors > 0 || r.non2xx > 0)
      throw new Error(`${path}: ${r.errors} errors, ${r.non2xx} non-2xx`);
    return { rps: r.requestsPerSecond, cpu: r.serverCpuUsPerRequest, p99: r.p99Ms };
  };

const predict = '/v1/models/digits:predict';
const loads: Record<string, { env: Record<string, string>; run: Load }> = {
  'JSON 1 row, 8 conns': { env: {}, run: http(predict, jsonBody(1), json, 8) },
  'JSON 256 rows, 8 conns': { env: {}, run: http(predict, jsonBody(256), json, 8) },
  'float32 in/out 256 rows': {
    env: {},
    run: http(predict, f32(rows256), { ...octet, accept: 'application/octet-stream' }, 8),
  },
  'OIP binary 256 rows': {
    env: {},
    run: http(
      '/v2/models/digits/infer',
      Buffer.concat([oipHeader, f32(rows256)]),
      { ...octet, 'inference-header-content-length': String(oipHeader.length) },
      8,
    ),
  },
  'gRPC raw 256 rows': {
    env: {},
    run: async (server, grpcPort) => {
      const r = await grpcInfer(server, grpcPort, seconds);
      return { rps: r.requestsPerSecond, cpu: r.serverCpuUsPerRequest, p99: r.p99Ms };
    },
  },
  'wide 1 row, 32 conns, batching off': {
    env: {},
    run: http('/v1/models/wide:predict', wideRow, json, 32),
  },
  'wide 1 row, 32 conns, batching 2000 µs': {
    env: { BATCH_MAX_DELAY_US: '2000' },
    run: http('/v1/models/wide:predict', wideRow, json, 32),
  },
};

const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
const fmt = (n: number | undefined, digits = 0) =>
  n === undefined
    ? '—'
    : n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

process.stdout.write(
  `A/B of two trees' servers (WORKERS=1, ${rounds} alternated rounds of ${seconds} s; medians): base ${trees.base}, this ${trees.this} ${JSON.stringify(thisEnv)}; load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}\n`,
);
process.stdout.write(
  `${'load'.padEnd(40)}${'base req/s'.padStart(12)}${'this req/s'.padStart(12)}${'this/base'.padStart(11)}${'base µs/req'.padStart(13)}${'this µs/req'.padStart(13)}${'base p99'.padStart(10)}${'this p99'.padStart(10)}  ratios per round\n`,
);
try {
  for (const [name, { env, run }] of Object.entries(loads)) {
    if (only && !only.some((o) => name.includes(o))) continue;
    const servers: Record<string, { server: Server; grpcPort: number }> = {};
    for (const [which, tree] of Object.entries(trees)) {
      const grpcPort = await freePort();
      servers[which] = {
        server: await serve(tree, {
          ...env,
          ...(which === 'this' ? thisEnv : {}),
          GRPC_PORT: String(grpcPort),
        }),
        grpcPort,
      };
    }
    const figures: Record<string, Figure[]> = { base: [], this: [] };
    // One untimed warm-up each (JIT, helper threads, the first batch).
    for (const which of ['base', 'this']) {
      const s = servers[which]!;
      await run(s.server, s.grpcPort);
    }
    for (let r = 0; r < rounds; r++) {
      for (const which of r % 2 === 0 ? ['base', 'this'] : ['this', 'base']) {
        const s = servers[which]!;
        figures[which]!.push(await run(s.server, s.grpcPort));
      }
    }
    await Promise.all(Object.values(servers).map((s) => s.server.stop()));
    const b = figures['base']!;
    const t = figures['this']!;
    const rps = (f: Figure[]) => median(f.map((x) => x.rps));
    const cpu = (f: Figure[]) =>
      f.every((x) => x.cpu !== undefined) ? median(f.map((x) => x.cpu!)) : undefined;
    const p99 = (f: Figure[]) => median(f.map((x) => x.p99));
    process.stdout.write(
      `${name.padEnd(40)}${fmt(rps(b)).padStart(12)}${fmt(rps(t)).padStart(12)}${fmt(rps(t) / rps(b), 2).padStart(11)}${fmt(cpu(b)).padStart(13)}${fmt(cpu(t)).padStart(13)}${fmt(p99(b), 1).padStart(10)}${fmt(p99(t), 1).padStart(10)}  ${t.map((x, i) => (x.rps / b[i]!.rps).toFixed(2)).join(', ')}\n`,
    );
  }
} finally {
  rmSync(repository, { recursive: true, force: true });
  rmSync(logs, { recursive: true, force: true });
}
process.stdout.write(
  `load average at the end ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}\n`,
);
