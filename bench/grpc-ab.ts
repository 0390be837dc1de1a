/**
 * gRPC ModelInfer (256 raw rows, 8 connections: the serving bench's gRPC load) on servers of
 * several source trees or environments, compared: `npx tsx bench/grpc-ab.ts SECONDS ROUNDS
 * NAME=TREE[:ENV-JSON] …`. Each round starts one server per variant (WORKERS=1, digits, the tree's
 * sources under tsx; ports BENCH_PORT_BASE (19600) + 2i and + 2i + 1, HTTP and gRPC, for variant
 * i), warms each up for 2 s, then runs BENCH_BURSTS (2) bursts of SECONDS each and stops them:
 * - one variant after another (the order reversed every other burst and round), or, with
 *   BENCH_SIMULTANEOUS=1, all variants side by side (one load generator, this process), so that
 *   what else the machine runs weighs on each alike: on this shared 2-vCPU VM one variant's server
 *   CPU per call moved by ±15 % from one run to the next, and side by side two servers of the same
 *   tree differed by ~6 % per burst;
 * - each run first waits (60 s at most) for a second in which the machine was idle.
 * Printed per run: req/s, p99, the server's CPU per call (all its threads, and its main thread's
 * alone), the 1-minute load average when it started and the CPU the rest of the machine used
 * meanwhile; then each variant's medians, and each variant against the first, paired burst by
 * burst (the median ratio, and in how many bursts it was lower or higher).
 * BENCH_JSON=1 (one after another only): after each gRPC run, the same 256 rows as JSON predict on
 * the same server, and the gRPC / JSON ratio of rows/s (issue 11's goal: 2). BENCH_NODE_FLAGS:
 * the servers' node flags (`--perf-basic-prof`); BENCH_PERF_DIR: a `perf record -g` of each run's
 * server into that directory, or with BENCH_STRACE=1 an `strace -c` of its main thread.
 * (bench/README.md, issue 11's twenty-eighth round.)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { grpcInfer, http, requestBodies, type Server, startTree } from './http.js';

const [secondsArg = '6', roundsArg = '3', ...specs] = process.argv.slice(2);
const seconds = Number(secondsArg);
const rounds = Number(roundsArg);
const portBase = Number(process.env['BENCH_PORT_BASE'] ?? 19600);
if (specs.length === 0) throw new Error('give at least one NAME=TREE[:ENV-JSON]');
const variants = specs.map((spec, i) => {
  const [name, rest] = spec.split(/=(.*)/s) as [string, string | undefined];
  if (!rest) throw new Error(`${spec}: expected NAME=TREE[:ENV-JSON]`);
  const colon = rest.indexOf(':');
  const tree = resolve(colon < 0 ? rest : rest.slice(0, colon));
  const env = colon < 0 ? {} : (JSON.parse(rest.slice(colon + 1)) as Record<string, string>);
  return { name, tree, env, http: portBase + 2 * i, grpc: portBase + 2 * i + 1 };
});

/** utime + stime of one thread (the main thread: tid = pid), in µs. */
function mainThreadUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 1e4;
}

interface Run {
  rps: number;
  cpu: number;
  main: number;
  load: number;
  others: number;
  jsonRps: number;
}

/** Busy time of all CPUs so far (/proc/stat: all but idle and iowait), in 1/100 s. */
function busyTicks(): number {
  const fields = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return fields.reduce((a, b) => a + b, 0) - fields[3]! - fields[4]!;
}

/**
 * Waits (60 s at most) for a second in which the machine's CPUs were busy less than 15 % of one
 * (other sessions share the machine): a run then starts on a quiet machine, if one comes.
 */
async function quiet(): Promise<void> {
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    const b0 = busyTicks();
    await new Promise((r) => setTimeout(r, 1000));
    if (busyTicks() - b0 < 15) return;
  }
}
const bursts = Number(process.env['BENCH_BURSTS'] ?? 2);
const nodeFlags = (process.env['BENCH_NODE_FLAGS'] ?? '').split(' ').filter(Boolean);
const perfDir = process.env['BENCH_PERF_DIR'];
const simultaneous = process.env['BENCH_SIMULTANEOUS'] === '1';
const withJson = process.env['BENCH_JSON'] === '1';
const PREDICT = '/v1/models/digits:predict';
const JSON_HEADERS = { 'content-type': 'application/json' };
const { jsonBody } = requestBodies();
const runs = new Map<string, Run[]>(variants.map((v) => [v.name, []]));
const repository = mkdtempSync(join(tmpdir(), 'normserve-grpc-ab-'));
copyBundledModel('digits', repository);

/**
 * `strace -c` of `pid`'s main thread for `seconds` into `file` (system calls counted), when
 * BENCH_STRACE=1; else `perf record -g` of `pid` for `seconds`, into `file`. Resolves when done.
 */
function perfRecord(pid: number, seconds: number, file: string): Promise<void> {
  return new Promise((done, fail) => {
    const args =
      process.env['BENCH_STRACE'] === '1'
        ? ['timeout', '-s', 'INT', String(seconds), 'strace', '-c', '-p', String(pid), '-o', file]
        : [
            'perf',
            'record',
            '-k',
            'mono',
            '-F',
            '1999',
            '-g',
            '-p',
            String(pid),
            '-o',
            file,
          ].concat(['--', 'sleep', String(seconds)]);
    const perf = spawn(args[0]!, args.slice(1), { stdio: 'ignore' });
    perf.once('error', fail);
    perf.once('exit', () => done());
  });
}

try {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse();
    const servers = new Map<string, Server>();
    try {
      for (const v of order) {
        const server = await startTree(
          v.tree,
          repository,
          join(repository, `${v.name}.log`),
          { PORT: String(v.http), GRPC_PORT: String(v.grpc), ...v.env },
          nodeFlags,
        );
        servers.set(v.name, server);
        // The gRPC port opens after the HTTP listening line; the first run is the warm-up.
        for (let tries = 0; ; tries++) {
          try {
            await grpcInfer(server, v.grpc, 2);
            break;
          } catch (e) {
            if (tries >= 50) throw e;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      }
      for (let burst = 0; burst < bursts; burst++) {
        const inTurn = burst % 2 === 0 ? order : [...order].reverse();
        // Side by side: every variant's load at once (one load generator, this process), so that
        // what else the machine runs meanwhile weighs on each alike; else one after another.
        for (const group of simultaneous ? [inTurn] : inTurn.map((v) => [v])) {
          await quiet();
          const load = loadavg()[0]!;
          const busy0 = busyTicks();
          const self0 = process.cpuUsage();
          const measuredRuns = await Promise.all(
            group.map(async (v) => {
              const server = servers.get(v.name)!;
              const main0 = mainThreadUs(server.pid);
              const perf = perfDir
                ? perfRecord(
                    server.pid,
                    seconds - 1,
                    join(perfDir, `${v.name}-${round + 1}-${burst + 1}.data`),
                  )
                : undefined;
              const r = await grpcInfer(server, v.grpc, seconds);
              await perf;
              const calls = r.requestsPerSecond * seconds;
              const main = (mainThreadUs(server.pid) - main0) / calls;
              return { v, r, calls, main };
            }),
          );
          const self = process.cpuUsage(self0);
          // The CPU the rest of the machine used meanwhile (as a share of one CPU): all busy time
          // less the servers' and the load generator's.
          const others =
            ((busyTicks() - busy0) * 1e4 -
              self.user -
              self.system -
              measuredRuns.reduce(
                (sum, m) => sum + m.calls * (m.r.serverCpuUsPerRequest ?? 0),
                0,
              )) /
            (seconds * 1e6);
          for (const { v, r, main } of measuredRuns) {
            // The same 256 rows as JSON on the same server, right after (BENCH_JSON=1).
            const json = withJson
              ? await http(servers.get(v.name)!, PREDICT, jsonBody(256), JSON_HEADERS, seconds, 8)
              : undefined;
            const run = {
              rps: r.requestsPerSecond,
              cpu: r.serverCpuUsPerRequest ?? Number.NaN,
              main,
              load,
              others,
              jsonRps: json?.requestsPerSecond ?? Number.NaN,
            };
            runs.get(v.name)!.push(run);
            console.log(
              `round ${round + 1}.${burst + 1} ${v.name}: ${Math.round(run.rps)} req/s, server ${run.cpu.toFixed(0)} µs/call (main thread ${run.main.toFixed(0)}), p99 ${r.p99Ms.toFixed(1)} ms, load ${load.toFixed(2)}, others ${(100 * others).toFixed(0)} % of a CPU${json ? `; JSON ${Math.round(json.requestsPerSecond)} req/s (${json.serverCpuUsPerRequest?.toFixed(0)} µs/request), gRPC / JSON ${(r.requestsPerSecond / json.requestsPerSecond).toFixed(2)}` : ''}`,
            );
          }
        }
      }
    } finally {
      for (const server of servers.values()) await server.stop();
    }
  }
} finally {
  rmSync(repository, { recursive: true, force: true });
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const QUIET = 0.2;
for (const v of variants) {
  const all = runs.get(v.name)!;
  const quietRuns = all.filter((r) => r.others < QUIET);
  for (const [which, rs] of [
    ['all runs', all],
    [`runs while the rest of the machine used < ${100 * QUIET} % of a CPU`, quietRuns],
  ] as const) {
    if (rs.length === 0) continue;
    console.log(
      `${v.name}, ${which} (${rs.length}): median ${Math.round(median(rs.map((r) => r.rps)))} req/s (${rs.map((r) => Math.round(r.rps)).join(', ')}), ${median(rs.map((r) => r.cpu)).toFixed(0)} µs/call (${rs.map((r) => r.cpu.toFixed(0)).join(', ')}), main thread ${median(rs.map((r) => r.main)).toFixed(0)} µs${withJson ? `; gRPC / JSON ${median(rs.map((r) => r.rps / r.jsonRps)).toFixed(2)} (${rs.map((r) => (r.rps / r.jsonRps).toFixed(2)).join(', ')})` : ''}`,
    );
  }
}
// Paired: each run against the first variant's run of the same burst (side by side, or adjacent).
const [first, ...others] = variants;
for (const v of others) {
  const a = runs.get(first!.name)!;
  const b = runs.get(v.name)!;
  const cpu = b.map((r, i) => r.cpu / a[i]!.cpu);
  const rps = b.map((r, i) => r.rps / a[i]!.rps);
  console.log(
    `${v.name} / ${first!.name}, paired (${cpu.length}): µs per call × ${median(cpu).toFixed(3)} (lower in ${cpu.filter((x) => x < 1).length}), req/s × ${median(rps).toFixed(3)} (higher in ${rps.filter((x) => x > 1).length})`,
  );
}
