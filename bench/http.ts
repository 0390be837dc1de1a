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
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { publishCheckpoint } from '../src/service/index.js';
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
}

export interface HttpBench {
  rows: HttpRow[];
  /** Mean engine time of one dynamic batch of the wide model (from the server's metrics). */
  wideBatch: { delayUs: number; meanBatchComputeMs: number; meanBatchRows: number };
}

export interface Server {
  port: number;
  stop(): Promise<void>;
  get(path: string): Promise<string>;
}

/** Starts a process and waits for `readyLines` listening lines (one per worker); reads the port. */
export function start(
  args: string[],
  env: Record<string, string>,
  readyLines = 1,
): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    const timer = setTimeout(
      () => reject(new Error(`no listening line from ${args.join(' ')}: ${output.slice(-500)}`)),
      60_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const matches = [...output.matchAll(/[Ll]istening (?:at http:\/\/127\.0\.0\.1:)?(\d+)/g)];
      const match = matches[0];
      if (match && matches.length >= readyLines) {
        clearTimeout(timer);
        // From now on the log lines are read and dropped, not parsed by the load generator.
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        const port = Number(match[1]);
        resolve({
          port,
          get: async (path) => (await fetch(`http://127.0.0.1:${port}${path}`)).text(),
          stop: () =>
            new Promise((done) => {
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
      }
      if (output.length > 100_000) output = output.slice(-10_000);
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`${args.join(' ')} exited ${code}: ${output.slice(-500)}`)),
    );
  });
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

function row(
  name: string,
  rowsPerRequest: number,
  connections: number,
  r: { requestsPerSecond: number; p50Ms: number; p99Ms: number; errors: number; non2xx: number },
): HttpRow {
  return {
    name,
    rowsPerRequest,
    connections,
    ...r,
    rowsPerSecond: r.requestsPerSecond * rowsPerRequest,
  };
}

export const fromAutocannon = (r: autocannon.Result) => ({
  requestsPerSecond: r.requests.average,
  p50Ms: r.latency.p50,
  p99Ms: r.latency.p99,
  errors: r.errors,
  non2xx: r.non2xx,
});

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

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

const f32 = (values: number[]) => Buffer.from(Float32Array.from(values).buffer);

export async function benchHttp(
  options: { durationSeconds?: number; rounds?: number; batchDelayUs?: number } = {},
): Promise<HttpBench> {
  const duration = options.durationSeconds ?? 8;
  const rounds = options.rounds ?? 3;
  const delayUs = options.batchDelayUs ?? 2000;
  const repository = mkdtempSync(join(tmpdir(), 'normserve-bench-'));
  cpSync('models/digits', join(repository, 'digits'), { recursive: true });
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
  const out: HttpRow[] = [];
  const tsx = ['--import', 'tsx'];
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
      workers,
    );
  try {
    // 1 row, JSON: normserve next to the bare route, alternated.
    const grpcPort = await freePort();
    const bare = await start([...tsx, 'bench/bare-server.ts'], { PORT: '0' });
    const single = await serve(1, { GRPC_PORT: String(grpcPort) });
    const url = (s: Server, path: string) => `http://127.0.0.1:${s.port}${path}`;
    const predict = '/v1/models/digits:predict';
    const bareRuns: ReturnType<typeof fromAutocannon>[] = [];
    const predictRuns: ReturnType<typeof fromAutocannon>[] = [];
    for (let r = 0; r < rounds; r++) {
      bareRuns.push(fromAutocannon(await load(url(bare, predict), jsonBody(1), json, duration, 8)));
      predictRuns.push(
        fromAutocannon(await load(url(single, predict), jsonBody(1), json, duration, 8)),
      );
    }
    const medianOf = (runs: ReturnType<typeof fromAutocannon>[]) => ({
      requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
      p50Ms: median(runs.map((r) => r.p50Ms)),
      p99Ms: median(runs.map((r) => r.p99Ms)),
      errors: runs.reduce((n, r) => n + r.errors, 0),
      non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
    });
    out.push(row('bare parse+validate, JSON', 1, 8, medianOf(bareRuns)));
    out.push(row('predict JSON (WORKERS=1)', 1, 8, medianOf(predictRuns)));

    // 256 rows: JSON, binary bodies, gRPC raw.
    out.push(
      row(
        'bare parse+validate, JSON',
        256,
        8,
        fromAutocannon(await load(url(bare, predict), jsonBody(256), json, duration, 8)),
      ),
    );
    await bare.stop();
    out.push(
      row(
        'predict JSON (WORKERS=1)',
        256,
        8,
        fromAutocannon(await load(url(single, predict), jsonBody(256), json, duration, 8)),
      ),
    );
    out.push(
      row(
        'predict float32 in/out (WORKERS=1)',
        256,
        8,
        fromAutocannon(
          await load(
            url(single, predict),
            f32(rows256),
            { ...octet, accept: 'application/octet-stream' },
            duration,
            8,
          ),
        ),
      ),
    );
    out.push(
      row(
        'OIP infer binary tensors (WORKERS=1)',
        256,
        8,
        fromAutocannon(
          await load(
            url(single, '/v2/models/digits/infer'),
            Buffer.concat([oipHeader, f32(rows256)]),
            { ...octet, 'inference-header-content-length': String(oipHeader.length) },
            duration,
            8,
          ),
        ),
      ),
    );
    const grpc = await grpcLoad({
      port: grpcPort,
      method: 'ModelInfer',
      request: {
        model_name: 'digits',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [256, 64] }],
        raw_input_contents: [f32(rows256)],
        outputs: [{ name: 'probabilities' }],
      },
      connections: 8,
      durationSeconds: duration,
    });
    out.push(row('gRPC ModelInfer raw (WORKERS=1)', 256, 8, { ...grpc, non2xx: 0 }));

    // The wide model, 32 concurrent 1-row clients: batching off (this server), then on.
    const wide = '/v1/models/wide:predict';
    out.push(
      row(
        'wide, batching off (WORKERS=1)',
        1,
        32,
        fromAutocannon(await load(url(single, wide), wideRow, json, duration, 32)),
      ),
    );
    await single.stop();
    const batched = await serve(1, { BATCH_MAX_DELAY_US: String(delayUs) });
    out.push(
      row(
        `wide, batching ${delayUs} µs (WORKERS=1)`,
        1,
        32,
        fromAutocannon(await load(url(batched, wide), wideRow, json, duration, 32)),
      ),
    );
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
    await batched.stop();

    // WORKERS=2.
    const double = await serve(2);
    for (const n of [1, 256]) {
      out.push(
        row(
          'predict JSON (WORKERS=2)',
          n,
          8,
          fromAutocannon(await load(url(double, predict), jsonBody(n), json, duration, 8)),
        ),
      );
    }
    await double.stop();
    return { rows: out, wideBatch };
  } finally {
    rmSync(repository, { recursive: true, force: true });
  }
}
