/**
 * Serving throughput against real server processes, side by side in one run: autocannon for
 * HTTP, a closed-loop gRPC client (grpc-load.ts) for gRPC.
 *
 * - 1-row JSON predict next to the bare route (bare-server.ts: Fastify, the same body, the same
 *   validation, no inference), alternated over several rounds (the median counts), as the
 *   machine's load drifts;
 * - 256-row predict: JSON, TF-style float32 rows in and out, the OIP binary tensor extension, gRPC
 *   ModelInfer with raw contents, in rows/s;
 * - the wide 784-1024-1024-10 model with 32 concurrent 1-row clients, dynamic batching off and on;
 * - WORKERS=1 vs 2.
 *
 * Every row also reports the CPU time per request of the server process (all its threads and, for
 * WORKERS=2, its workers; from /proc) and of the load generator (this process), so a reader can
 * see that the client did not limit a figure. The servers' log lines go to a file in the run's
 * temporary directory, not through a pipe into this process: reading them would cost the load
 * generator CPU for normserve's rows and not for the bare route's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { publishCheckpoint } from '../src/service/index.js';
import { copyBundledModel } from '../test/helpers/bundled-models.js';
import { grpcLoad } from './grpc-load.js';
import { wideCheckpoint } from './models.js';

export interface HttpRow {
  name: string;
  rowsPerRequest: number;
  connections: number;
  requestsPerSecond: number;
  rowsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
  /** CPU time of the server (every thread and worker) per request, µs; undefined without /proc. */
  serverCpuUsPerRequest: number | undefined;
  /** CPU time of the load generator (this process) per request, µs. */
  clientCpuUsPerRequest: number;
}

export interface HttpBench {
  rows: HttpRow[];
  /** Mean engine time of one dynamic batch of the wide model (from the server's metrics). */
  wideBatch: { delayUs: number; meanBatchComputeMs: number; meanBatchRows: number };
}

export interface Server {
  port: number;
  /** The server process (with WORKERS=1 the one that serves). */
  pid: number;
  stop(): Promise<void>;
  get(path: string): Promise<string>;
}

/**
 * GET on a connection of its own, closed after the answer. Why not fetch(): undici keeps the
 * socket open for the server's keep-alive time (72 s), and one idle connection during a load is a
 * caller the dynamic batcher must wait for (an idle client could still send): the bench's own
 * metrics reads would turn the 32 closed-loop clients into 33 callers.
 */
function getClosing(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet(
      { host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve(text));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
  });
}

/**
 * Starts a process with its stdout in `logFile` and waits for `readyLines` listening lines (one
 * per worker); reads the port.
 */
export async function start(
  args: string[],
  env: Record<string, string>,
  logFile: string,
  readyLines = 1,
): Promise<Server> {
  const fd = openSync(logFile, 'w');
  const child: ChildProcess = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, 'inherit'],
  });
  closeSync(fd);
  let exited: number | null | undefined;
  child.once('exit', (code) => {
    exited = code;
  });
  const started = Date.now();
  for (;;) {
    const output = readFileSync(logFile, 'utf8');
    const matches = [...output.matchAll(/[Ll]istening (?:at http:\/\/127\.0\.0\.1:)?(\d+)/g)];
    if (matches.length >= readyLines) {
      const port = Number(matches[0]![1]);
      return {
        port,
        pid: child.pid!,
        get: (path) => getClosing(port, path),
        stop: () =>
          new Promise((done) => {
            if (exited !== undefined) return done();
            child.once('exit', () => done());
            child.kill('SIGTERM');
          }),
      };
    }
    if (exited !== undefined)
      throw new Error(`${args.join(' ')} exited ${exited}: ${output.slice(-500)}`);
    if (Date.now() - started > 60_000) {
      child.kill('SIGKILL');
      throw new Error(`no listening line from ${args.join(' ')}: ${output.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Linux's USER_HZ: /proc reports CPU times in 1/100 s on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** utime + stime of a process and of its descendants (cluster workers), in µs; undefined without /proc. */
function processTreeCpuUs(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    let us = (ticks * 1e6) / TICKS_PER_SECOND;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const child of children === '' ? [] : children.split(' ')) {
        us += processTreeCpuUs(Number(child)) ?? 0;
      }
    }
    return us;
  } catch {
    return undefined;
  }
}

/** Runs a load and reports the server's and this process's CPU time per request. */
export async function measured<T extends { requests: number }>(
  server: Server,
  run: () => Promise<T>,
): Promise<T & { serverCpuUsPerRequest: number | undefined; clientCpuUsPerRequest: number }> {
  const server0 = processTreeCpuUs(server.pid);
  const client0 = process.cpuUsage();
  const result = await run();
  const client = process.cpuUsage(client0);
  const server1 = processTreeCpuUs(server.pid);
  const n = Math.max(1, result.requests);
  return {
    ...result,
    serverCpuUsPerRequest:
      server0 === undefined || server1 === undefined ? undefined : (server1 - server0) / n,
    clientCpuUsPerRequest: (client.user + client.system) / n,
  };
}

/** The environment of one bench server: WORKERS=1 on `repository`, no polling, a free port. */
export async function benchServerEnv(repository: string): Promise<Record<string, string>> {
  return {
    MODEL_REPOSITORY: repository,
    MODEL_POLL_INTERVAL_MS: '0',
    ADMIN_TOKEN: 'bench-admin-token-0123456789',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    WORKERS: '1',
    PORT: String(await freePort()),
  };
}

/**
 * A WORKERS=1 server of the source tree `tree` (spawned from that directory, so it runs that
 * tree's sources) on `repository`, for the A/B scripts (ab-trees.ts, ab-batching.ts) and
 * server-threads.ts (`nodeFlags`: node's own flags, such as --trace-gc).
 */
export async function startTree(
  tree: string,
  repository: string,
  logFile: string,
  env: Record<string, string> = {},
  nodeFlags: string[] = [],
): Promise<Server> {
  const here = process.cwd();
  process.chdir(tree);
  try {
    return await start(
      [...nodeFlags, '--import', 'tsx', 'src/cli/server.ts'],
      { ...(await benchServerEnv(repository)), ...env },
      logFile,
    );
  } finally {
    process.chdir(here);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export function load(
  url: string,
  body: string | Buffer,
  headers: Record<string, string>,
  durationSeconds: number,
  connections: number,
): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(
      { url, method: 'POST', headers, body, duration: durationSeconds, connections },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
}

export type Measured = Omit<HttpRow, 'name' | 'rowsPerRequest' | 'connections' | 'rowsPerSecond'>;

/** One autocannon run against `server`, with both sides' CPU per request. */
export async function http(
  server: Server,
  path: string,
  body: string | Buffer,
  headers: Record<string, string>,
  durationSeconds: number,
  connections: number,
): Promise<Measured> {
  const r = await measured(server, async () => {
    const result = await load(
      `http://127.0.0.1:${server.port}${path}`,
      body,
      headers,
      durationSeconds,
      connections,
    );
    return { result, requests: result.requests.total };
  });
  return {
    requestsPerSecond: r.result.requests.average,
    p50Ms: r.result.latency.p50,
    p99Ms: r.result.latency.p99,
    errors: r.result.errors,
    non2xx: r.result.non2xx,
    serverCpuUsPerRequest: r.serverCpuUsPerRequest,
    clientCpuUsPerRequest: r.clientCpuUsPerRequest,
  };
}

function row(name: string, rowsPerRequest: number, connections: number, r: Measured): HttpRow {
  return {
    name,
    rowsPerRequest,
    connections,
    ...r,
    rowsPerSecond: r.requestsPerSecond * rowsPerRequest,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

/** The median of each figure over alternated runs; errors summed. */
function medianOf(runs: Measured[]): Measured {
  const cpu = runs.map((r) => r.serverCpuUsPerRequest);
  return {
    requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    errors: runs.reduce((n, r) => n + r.errors, 0),
    non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    serverCpuUsPerRequest: cpu.every((c) => c !== undefined) ? median(cpu) : undefined,
    clientCpuUsPerRequest: median(runs.map((r) => r.clientCpuUsPerRequest)),
  };
}

/**
 * Runs every load once per round, in an order that alternates direction each round (so no load
 * always follows the same neighbour), and keeps each one's median: on a shared machine whose
 * load drifts, the loads compared in a ratio see the same conditions.
 */
async function alternated(
  rounds: number,
  loads: Record<string, () => Promise<Measured>>,
): Promise<Record<string, Measured>> {
  const names = Object.keys(loads);
  const runs = Object.fromEntries(names.map((n) => [n, [] as Measured[]]));
  for (let r = 0; r < rounds; r++) {
    for (const name of r % 2 === 0 ? names : [...names].reverse()) {
      runs[name]!.push(await loads[name]!());
    }
  }
  return Object.fromEntries(names.map((n) => [n, medianOf(runs[n]!)]));
}

/** A metric's value from a Prometheus text exposition (first matching sample). */
function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

export const DIGITS_ROW = [
  0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8,
  8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13,
  10, 0, 0, 0,
];

export const f32 = (values: number[]) => Buffer.from(Float32Array.from(values).buffer);

/** The serving bench's request bodies (bench/ab-trees.ts sends the same). */
export function requestBodies() {
  const jsonBody = (n: number) =>
    JSON.stringify({ instances: Array.from({ length: n }, () => DIGITS_ROW) });
  const rows256 = Array.from({ length: 256 }, () => DIGITS_ROW).flat();
  const oipHeader = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: 'input',
          shape: [256, 64],
          datatype: 'FP32',
          parameters: { binary_data_size: rows256.length * 4 },
        },
      ],
      outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
    }),
  );
  const wideRow = JSON.stringify({
    instances: [Array.from({ length: 784 }, (_, i) => ((i * 37) % 255) / 255)],
  });
  return { jsonBody, rows256, oipHeader, wideRow };
}

/**
 * The serving bench's gRPC load on `server`: ModelInfer with 256 digits rows as raw contents,
 * 8 connections with one call in flight each; the first answer must hold 256 × 10 probabilities.
 */
export async function grpcInfer(
  server: Server,
  grpcPort: number,
  durationSeconds: number,
): Promise<Measured> {
  const { rows256 } = requestBodies();
  const r = await measured(server, () =>
    grpcLoad({
      port: grpcPort,
      method: 'ModelInfer',
      request: {
        model_name: 'digits',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [256, 64] }],
        raw_input_contents: [f32(rows256)],
        outputs: [{ name: 'probabilities' }],
      },
      connections: 8,
      durationSeconds,
      check: (response) => {
        const raw = (response as { raw_output_contents?: Uint8Array[] }).raw_output_contents?.[0];
        if (raw?.byteLength !== 256 * 10 * 4)
          throw new Error('gRPC ModelInfer: no 256 × 10 float32 probabilities');
      },
    }),
  );
  return {
    requestsPerSecond: r.requestsPerSecond,
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    errors: r.errors,
    non2xx: 0,
    serverCpuUsPerRequest: r.serverCpuUsPerRequest,
    clientCpuUsPerRequest: r.clientCpuUsPerRequest,
  };
}

export async function benchHttp(
  options: {
    durationSeconds?: number;
    rounds?: number;
    batchDelayUs?: number;
    /** Only the 1-row pair (bare route and JSON predict), as `--only http-1row` runs it. */
    oneRowOnly?: boolean;
  } = {},
): Promise<HttpBench> {
  const duration = options.durationSeconds ?? 8;
  const rounds = options.rounds ?? 3;
  const delayUs = options.batchDelayUs ?? 2000;
  const repository = mkdtempSync(join(tmpdir(), 'normserve-bench-'));
  const logs = mkdtempSync(join(tmpdir(), 'normserve-bench-logs-'));
  copyBundledModel('digits', repository);
  await publishCheckpoint(repository, wideCheckpoint());
  const env = {
    MODEL_REPOSITORY: repository,
    MODEL_POLL_INTERVAL_MS: '0',
    ADMIN_TOKEN: 'bench-admin-token-0123456789',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
  };
  const json = { 'content-type': 'application/json' };
  const octet = { 'content-type': 'application/octet-stream' };
  const { jsonBody, rows256, oipHeader, wideRow } = requestBodies();
  const out: HttpRow[] = [];
  const tsx = ['--import', 'tsx'];
  let servers = 0;
  const logFile = () => join(logs, `server-${++servers}.log`);
  const serve = async (workers: number, extra: Record<string, string> = {}) =>
    start(
      [...tsx, 'src/cli/server.ts'],
      {
        ...env,
        WORKERS: String(workers),
        PORT: String(await freePort()),
        GRPC_PORT: '0',
        ...extra,
      },
      logFile(),
      workers,
    );
  const predict = '/v1/models/digits:predict';
  try {
    // 1 row, JSON: normserve next to the bare route, alternated.
    const grpcPort = await freePort();
    const bare = await start([...tsx, 'bench/bare-server.ts'], { PORT: '0' }, logFile());
    const single = await serve(1, { GRPC_PORT: String(grpcPort) });
    const oneRow = await alternated(rounds, {
      bare: () => http(bare, predict, jsonBody(1), json, duration, 8),
      predict: () => http(single, predict, jsonBody(1), json, duration, 8),
    });
    out.push(row('bare parse+validate, JSON', 1, 8, oneRow['bare']!));
    out.push(row('predict JSON (WORKERS=1)', 1, 8, oneRow['predict']!));
    if (options.oneRowOnly) {
      await Promise.all([bare.stop(), single.stop()]);
      return { rows: out, wideBatch: { delayUs, meanBatchComputeMs: NaN, meanBatchRows: NaN } };
    }
    out.push(
      row(
        'bare parse+validate, JSON',
        256,
        8,
        await http(bare, predict, jsonBody(256), json, duration, 8),
      ),
    );
    await bare.stop();

    // 256 rows: JSON, binary bodies, gRPC raw, alternated.
    const body256 = jsonBody(256);
    const float32Body = f32(rows256);
    const oipBody = Buffer.concat([oipHeader, f32(rows256)]);
    const wide256 = await alternated(rounds, {
      json: () => http(single, predict, body256, json, duration, 8),
      float32: () =>
        http(
          single,
          predict,
          float32Body,
          { ...octet, accept: 'application/octet-stream' },
          duration,
          8,
        ),
      oip: () =>
        http(
          single,
          '/v2/models/digits/infer',
          oipBody,
          { ...octet, 'inference-header-content-length': String(oipHeader.length) },
          duration,
          8,
        ),
      grpc: () => grpcInfer(single, grpcPort, duration),
    });
    out.push(row('predict JSON (WORKERS=1)', 256, 8, wide256['json']!));
    out.push(row('predict float32 in/out (WORKERS=1)', 256, 8, wide256['float32']!));
    out.push(row('OIP infer binary tensors (WORKERS=1)', 256, 8, wide256['oip']!));
    out.push(row('gRPC ModelInfer raw (WORKERS=1)', 256, 8, wide256['grpc']!));
    await single.stop();

    // The wide model, 32 concurrent 1-row clients: batching off and on, two servers, alternated.
    const wide = '/v1/models/wide:predict';
    const unbatched = await serve(1);
    const batched = await serve(1, { BATCH_MAX_DELAY_US: String(delayUs) });
    const wideRuns = await alternated(rounds, {
      off: () => http(unbatched, wide, wideRow, json, duration, 32),
      on: () => http(batched, wide, wideRow, json, duration, 32),
    });
    out.push(row('wide, batching off (WORKERS=1)', 1, 32, wideRuns['off']!));
    out.push(row(`wide, batching ${delayUs} µs (WORKERS=1)`, 1, 32, wideRuns['on']!));
    const text = await batched.get('/metrics');
    const wideBatch = {
      delayUs,
      meanBatchComputeMs:
        (metric(text, 'normserve_inference_duration_seconds_sum', 'model="wide"') /
          metric(text, 'normserve_inference_duration_seconds_count', 'model="wide"')) *
        1000,
      meanBatchRows:
        metric(text, 'normserve_dynamic_batch_rows_sum', 'model="wide"') /
        metric(text, 'normserve_dynamic_batch_rows_count', 'model="wide"'),
    };
    await Promise.all([unbatched.stop(), batched.stop()]);

    // WORKERS=2.
    const double = await serve(2);
    for (const n of [1, 256]) {
      out.push(
        row(
          'predict JSON (WORKERS=2)',
          n,
          8,
          await http(double, predict, jsonBody(n), json, duration, 8),
        ),
      );
    }
    await double.stop();
    return { rows: out, wideBatch };
  } finally {
    rmSync(repository, { recursive: true, force: true });
    rmSync(logs, { recursive: true, force: true });
  }
}
