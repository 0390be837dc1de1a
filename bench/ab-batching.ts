/**
 * Dynamic batching side by side: `AB_CONFIGS='[["name", "TREE", {"ENV": "value"}], …]' npx tsx
 * bench/ab-batching.ts [rounds] [seconds]` starts one server (WORKERS=1) per entry — TREE a source
 * tree with node_modules (`.`, or a git worktree of another commit), with its environment — on
 * one model repository, loads each in turn with the serving bench's wide-model load (32
 * concurrent 1-row clients; `AB_BODY=digits` the 1-row digits body with 8), round by round in
 * alternating order, and prints per server the median req/s (and its ratio to the first
 * server's), server CPU per request, p99, and, from its metrics over the timed rounds, the mean
 * batch and the mean queue delay. For the batching policy of issue 11 (bench/README.md, fifth
 * round); bench/ab-trees.ts compares two trees on every serving load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { publishCheckpoint } from '../src/service/index.js';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { http, requestBodies, type Server, startTree } from './http.js';
import { wideCheckpoint } from './models.js';

const configs = JSON.parse(process.env.AB_CONFIGS ?? '[]') as [
  string,
  string,
  Record<string, string>,
][];
if (configs.length === 0)
  throw new Error(
    'usage: AB_CONFIGS=\'[["name","TREE",{"ENV":"value"}],…]\' tsx bench/ab-batching.ts',
  );
const [roundsArg, secondsArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 5);
const seconds = Number(secondsArg ?? 4);
const digits = process.env.AB_BODY === 'digits';
const { wideRow, jsonBody } = requestBodies();
const body = digits ? jsonBody(1) : wideRow;
const path = digits ? '/v1/models/digits:predict' : '/v1/models/wide:predict';
const connections = digits ? 8 : 32;

const repository = mkdtempSync(join(tmpdir(), 'normserve-ab-batching-'));
const logs = mkdtempSync(join(tmpdir(), 'normserve-ab-batching-logs-'));
copyBundledModel('digits', repository);
await publishCheckpoint(repository, wideCheckpoint());

interface Figure {
  rps: number;
  cpu: number;
  p99: number;
}
const servers: { name: string; server: Server; figures: Figure[]; before: string }[] = [];
const here = process.cwd();
try {
  for (const [name, tree, env] of configs) {
    const server = await startTree(
      resolve(here, tree),
      repository,
      join(logs, `server-${servers.length + 1}.log`),
      { GRPC_PORT: '0', ...env },
    );
    servers.push({ name, server, figures: [], before: '' });
  }
  const run = async (server: Server): Promise<Figure> => {
    const r = await http(
      server,
      path,
      body,
      { 'content-type': 'application/json' },
      seconds,
      connections,
    );
    if (r.errors > 0 || r.non2xx > 0)
      throw new Error(`${path}: ${r.errors} errors, ${r.non2xx} non-2xx`);
    return { rps: r.requestsPerSecond, cpu: r.serverCpuUsPerRequest ?? Number.NaN, p99: r.p99Ms };
  };
  const load0 = loadavg();
  // One untimed warm-up each (JIT, helper threads, the first batches).
  for (const s of servers) await run(s.server);
  for (const s of servers) s.before = await s.server.get('/metrics');
  for (let r = 0; r < rounds; r++)
    for (const s of r % 2 === 0 ? servers : [...servers].reverse())
      s.figures.push(await run(s.server));

  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  const sum = (text: string, name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const base = median(servers[0]!.figures.map((f) => f.rps));
  process.stdout.write(
    `${rounds} alternated rounds of ${seconds} s, ${connections} connections, ${path}; load average ${load0.map((l) => l.toFixed(2)).join(' ')} at the start\n`,
  );
  process.stdout.write(
    `${'server'.padEnd(30)}${'req/s'.padStart(8)}${'ratio'.padStart(7)}${'µs/req'.padStart(8)}${'p99 ms'.padStart(8)}${'batch'.padStart(7)}${'queue ms'.padStart(10)}  req/s per round\n`,
  );
  for (const s of servers) {
    const after = await s.server.get('/metrics');
    const delta = (name: string) => sum(after, name) - sum(s.before, name);
    const batch =
      delta('normserve_dynamic_batch_rows_sum') / delta('normserve_dynamic_batch_rows_count');
    const queueMs =
      (1000 * delta('normserve_batch_queue_delay_seconds_sum')) /
      delta('normserve_batch_queue_delay_seconds_count');
    const rps = median(s.figures.map((f) => f.rps));
    process.stdout.write(
      `${s.name.padEnd(30)}${rps.toFixed(0).padStart(8)}${(rps / base).toFixed(2).padStart(7)}${median(
        s.figures.map((f) => f.cpu),
      )
        .toFixed(0)
        .padStart(8)}${median(s.figures.map((f) => f.p99))
        .toFixed(1)
        .padStart(
          8,
        )}${(Number.isNaN(batch) ? '—' : batch.toFixed(1)).padStart(7)}${(Number.isNaN(queueMs) ? '—' : queueMs.toFixed(2)).padStart(10)}  ${s.figures.map((f) => f.rps.toFixed(0)).join(', ')}\n`,
    );
  }
  process.stdout.write(
    `load average at the end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );
} finally {
  await Promise.all(servers.map((s) => s.server.stop()));
  rmSync(repository, { recursive: true, force: true });
  rmSync(logs, { recursive: true, force: true });
}
