/**
 * Where one serving load's server CPU goes, thread by thread, and how often V8 collects:
 * `npx tsx bench/server-threads.ts LOAD [seconds] ['{"ENV":"value"}'] [node flags…]` starts one
 * server (WORKERS=1, digits, this tree's sources, with `--trace-gc` and any extra node flags),
 * warms it up for 2 s, then runs LOAD — `float32` (256 rows of float32 in and out), `json256` or
 * `json1`, `grpc` (ModelInfer with 256 raw rows, the serving bench's closed-loop gRPC client), or
 * `wide` (the serving bench's 1-row wide-model load, 32 connections; set
 * BATCH_MAX_DELAY_US in the environment argument to batch it) — for `seconds` (8) with 8
 * connections (wide: 32) and prints req/s, p99, the server's CPU per
 * request of each of its threads (user and system, from /proc/<pid>/task/*), its peak RSS, and
 * the full (Mark-Compact) and young (Scavenge) collections of the whole run, from V8's trace.
 * For the full collections that float32 request bodies started (bench/README.md, issue 11's
 * seventh round).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publishCheckpoint } from '../src/service/index.js';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { f32, freePort, grpcInfer, http, requestBodies, startTree } from './http.js';
import { wideCheckpoint } from './models.js';

const [load = 'float32', secondsArg, envArg, ...nodeFlags] = process.argv.slice(2);
const seconds = Number(secondsArg ?? 8);
const env = JSON.parse(envArg ?? '{}') as Record<string, string>;

const { jsonBody, rows256, wideRow } = requestBodies();
const bodies: Record<string, [string | Buffer, Record<string, string>]> = {
  float32: [
    f32(rows256),
    { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' },
  ],
  json256: [jsonBody(256), { 'content-type': 'application/json' }],
  json1: [jsonBody(1), { 'content-type': 'application/json' }],
  wide: [wideRow, { 'content-type': 'application/json' }],
  grpc: ['', {}],
};
const chosen = bodies[load];
if (!chosen) throw new Error(`LOAD is one of ${Object.keys(bodies).join(', ')}`);
const [body, headers] = chosen;

/** gRPC's port may open after the HTTP listening line: waits (60 s at most) until it accepts. */
async function untilAccepting(port: number): Promise<void> {
  for (let tries = 0; ; tries++) {
    const accepted = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (accepted) return;
    if (tries >= 600) throw new Error(`nothing accepts on the gRPC port ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** utime and stime of every thread of `pid`, in 1/100 s (USER_HZ), by thread id. */
function threadTicks(pid: number): Map<string, [number, number]> {
  const out = new Map<string, [number, number]>();
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(task, [Number(fields[11]), Number(fields[12])]);
  }
  return out;
}

/** The thread's name (comm: "node", "libuv-worker", "V8 DefaultWorke", a worker's own name). */
function threadName(pid: number, task: string): string {
  try {
    return readFileSync(`/proc/${pid}/task/${task}/comm`, 'utf8').trim();
  } catch {
    return '(ended)';
  }
}

const repository = mkdtempSync(join(tmpdir(), 'normserve-threads-'));
copyBundledModel('digits', repository);
if (load === 'wide') await publishCheckpoint(repository, wideCheckpoint());
const logFile = join(repository, 'server.log');
// GRPC_PORT in the environment argument chooses the port (else a free one).
const grpcPort = load === 'grpc' ? Number(env['GRPC_PORT'] ?? 0) || (await freePort()) : 0;
const server = await startTree('.', repository, logFile, { GRPC_PORT: String(grpcPort), ...env }, [
  '--trace-gc',
  ...nodeFlags,
]);
try {
  const path = load === 'wide' ? '/v1/models/wide:predict' : '/v1/models/digits:predict';
  const connections = load === 'wide' ? 32 : 8;
  if (load === 'grpc') await untilAccepting(grpcPort);
  const run = (durationSeconds: number) =>
    load === 'grpc'
      ? grpcInfer(server, grpcPort, durationSeconds)
      : http(server, path, body, headers, durationSeconds, connections);
  await run(2);
  const before = threadTicks(server.pid);
  const r = await run(seconds);
  const after = threadTicks(server.pid);
  const requests = r.requestsPerSecond * seconds;
  console.log(
    `${load}: ${Math.round(r.requestsPerSecond)} req/s, p99 ${r.p99Ms} ms, server CPU ${r.serverCpuUsPerRequest?.toFixed(0)} µs/request, load generator ${r.clientCpuUsPerRequest.toFixed(0)} µs/request`,
  );
  const usPerTick = 1e6 / 100;
  for (const [task, [user, system]] of after) {
    const [user0, system0] = before.get(task) ?? [0, 0];
    const u = ((user - user0) * usPerTick) / requests;
    const s = ((system - system0) * usPerTick) / requests;
    if (u + s >= 1)
      console.log(
        `  thread ${task} ${threadName(server.pid, task)}${task === String(server.pid) ? ' (main)' : ''}: user ${u.toFixed(0)} µs, system ${s.toFixed(0)} µs per request`,
      );
  }
  const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
  console.log(`  peak RSS ${(Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]) / 1024).toFixed(0)} MiB`);
} finally {
  await server.stop();
  const trace = readFileSync(logFile, 'utf8');
  // Every isolate's (the engine's helper threads trace too); "(reduce)" collections are the
  // memory reducer's of an idle isolate, not the load's.
  const full = trace.match(/: Mark-Compact (?!\(reduce\))/g)?.length ?? 0;
  const young = trace.match(/: Scavenge /g)?.length ?? 0;
  console.log(`  collections over the whole run (start-up included): ${full} full, ${young} young`);
  rmSync(repository, { recursive: true, force: true });
}
