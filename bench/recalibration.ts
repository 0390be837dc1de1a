/**
 * Recalibration throughput (issue 16), side by side in one run:
 *
 * - exact mode in the library (`recalibrate`, one thread) on `models/digits` and
 *   `models/digits-cnn` with N night-shifted rows, next to PyTorch doing the same computation on
 *   one thread (bench/torch-recalibration.py: eval mode, a forward pre-hook on each BatchNorm in
 *   turn, float64 sums, batches of 4096), alternated round by round, both on the same first
 *   `rows` rows; the best round of each counts, and the statistics of both are compared with the
 *   same procedure run by PyTorch in float64 (`--dtype float64`), the exact reference;
 * - the same through HTTP: `POST /v1/models/digits:recalibrate` with the N rows as one float32
 *   body (a WORKERS=1 server, posted with node:http), the request's wall time, its duration_ms
 *   and the server's CPU time;
 * - M rows as NDJSON streamed to a WORKERS=1 server while a client keeps asking for predictions:
 *   seconds to the published version, predictions answered meanwhile and their p99, and the
 *   server's RSS (VmRSS, sampled every 100 ms) over its idle RSS.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BatchNorm, namedModules } from '../src/nn/index.js';
import { recalibrate } from '../src/recalibration/index.js';
import { prepareWasmRuntime } from '../src/service/index.js';
import { bundledVersionDir, copyBundledModel } from '../test/helpers/bundled-models.js';
import { measured, type Server, start } from './http.js';
import { torchInterpreter, torchUnavailable } from './peer-engines.js';
import {
  loadNetwork,
  nightRows,
  postRecalibration,
  recalibrationServerEnv,
  TOKEN,
} from './recalibration-setup.js';
import { uploadFloorSeconds } from './upload-floor.js';

// The engine as the server and the CLI run it (their model registry prepares V8 before the first
// model loads): relaxed-SIMD FMA in the GEMM, WebAssembly compiled optimized up front. Until
// 2026-12-01 (h28) the library figures ran without it, unlike the HTTP figures of the same run.
prepareWasmRuntime();

export interface LibraryRow {
  model: string;
  rows: number;
  normserveRowsPerSecond: number;
  normserveSeconds: number[];
  torchRowsPerSecond: number | undefined;
  torchSeconds: number[];
  /**
   * Largest |Δ running_mean| / σ and |Δ running_var| / running_var over every channel, against
   * the float64 reference: normserve's statistics, and PyTorch's float32 ones.
   */
  normserveDelta: number | undefined;
  torchDelta: number | undefined;
}

export interface RecalibrationBench {
  torch: string;
  library: LibraryRow[];
  http: {
    rows: number;
    bodyBytes: number;
    wallSeconds: number;
    durationMs: number;
    /** The server process's CPU time (user + system) during the request. */
    serverCpuSeconds: number | undefined;
    rowsPerSecond: number;
    /** Against normserve's own library rows/s on the same rows in this run. */
    ratioToLibrary: number;
    ratioToTorch: number | undefined;
  }[];
  /**
   * The same body posted by the same client to a bare server that only reads it into reused
   * memory and hashes it (bench/upload-floor.ts): wall seconds per round.
   */
  uploadFloorSeconds: number[];
  ndjson:
    | {
        rows: number;
        bodyBytes: number;
        seconds: number;
        rowsPerSecond: number;
        idleRssMiB: number;
        peakRssMiB: number;
        predictions: number;
        predictionErrors: number;
        predictionP99Ms: number;
      }
    | undefined;
}

/**
 * PyTorch's best of three passes in one process: its first pass pays the allocator's first touch
 * of fresh memory (0.30–0.40 s against 0.17–0.18 s warm on 200,000 digits rows here), while
 * normserve's rounds run in a warm process — one cold pass per round made PyTorch look 2–8×
 * slower than it is.
 */
function torchRound(
  model: string,
  file: string,
  rows: number,
  out: string,
  dtype: 'float32' | 'float64' = 'float32',
): number {
  const python = torchInterpreter()!;
  const run = spawnSync(
    python,
    [
      'bench/torch-recalibration.py',
      model,
      file,
      String(rows),
      '--repeats',
      dtype === 'float32' ? '3' : '1',
      '--dtype',
      dtype,
      '--out',
      out,
    ],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    },
  );
  if (run.status !== 0)
    throw new Error(`torch-recalibration.py failed: ${run.stderr.slice(-2000)}`);
  const result = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { seconds: number[] };
  return Math.min(...result.seconds);
}

async function libraryRows(
  rows: number,
  rounds: number,
  torch: boolean,
  dir: string,
): Promise<LibraryRow[]> {
  const data = nightRows(rows);
  const file = join(dir, 'rows.f32');
  writeFileSync(file, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const out: LibraryRow[] = [];
  // The CNN's convolutions run on the JavaScript executor (no wasm kernels yet): a 20th of the rows.
  for (const [model, n] of [
    [bundledVersionDir('digits'), rows],
    [bundledVersionDir('digits-cnn'), Math.max(1000, Math.round(rows / 20))],
  ] as const) {
    const normserveSeconds: number[] = [];
    const torchSeconds: number[] = [];
    type Statistics = Map<string, { mean: ArrayLike<number>; var: ArrayLike<number> }>;
    let ours: Statistics | undefined;
    const torchOut = join(dir, 'torch-stats.json');
    const { config: shapeOf } = loadNetwork(model);
    const width = (shapeOf.input_shape as number[]).reduce((a, b) => a * b, 1);
    // Both sides see the same first n rows (until 2026-12-01 normserve recalibrated the CNN on
    // all `rows` rows and PyTorch on the first n: the CNN's "max Δ 4.2e-3" was that difference).
    const rowsOfModel = data.subarray(0, n * width);
    for (let r = 0; r < rounds; r++) {
      const { config, network } = loadNetwork(model);
      const started = performance.now();
      await recalibrate(network, config.input_transform, config.input_shape, rowsOfModel, {
        mode: 'exact',
      });
      normserveSeconds.push((performance.now() - started) / 1000);
      ours = new Map(
        namedModules(network)
          .filter((e): e is [string, BatchNorm] => e[1] instanceof BatchNorm)
          .map(([path, bn]) => [path, { mean: bn.runningMean.data, var: bn.runningVar.data }]),
      );
      if (torch) torchSeconds.push(torchRound(model, file, n, torchOut));
    }
    const readStatistics = (path: string): Statistics =>
      new Map(
        Object.entries(
          JSON.parse(readFileSync(path, 'utf8')) as Record<
            string,
            { mean: number[]; var: number[] }
          >,
        ),
      );
    /**
     * Means in units of the reference channel's standard deviation (a mean near 0 has no relative
     * accuracy in either), variances relative; the largest over every channel of every BatchNorm.
     */
    const largestDelta = (stats: Statistics, reference: Statistics): number => {
      let largest = 0;
      for (const [path, ref] of reference) {
        const s = stats.get(path);
        if (!s) throw new Error(`no BatchNorm ${path} to compare`);
        for (let i = 0; i < ref.mean.length; i++) {
          const sigma = Math.sqrt(ref.var[i]!);
          const meanDelta = Math.abs(s.mean[i]! - ref.mean[i]!) / Math.max(sigma, 1e-6);
          const varDelta =
            Math.abs(s.var[i]! - ref.var[i]!) / Math.max(Math.abs(ref.var[i]!), 1e-12);
          largest = Math.max(largest, meanDelta, varDelta);
        }
      }
      return largest;
    };
    let normserveDelta: number | undefined;
    let torchDelta: number | undefined;
    if (torch && ours) {
      const torch32 = readStatistics(torchOut);
      const reference = join(dir, 'torch-stats-float64.json');
      torchRound(model, file, n, reference, 'float64');
      const exact = readStatistics(reference);
      normserveDelta = largestDelta(ours, exact);
      torchDelta = largestDelta(torch32, exact);
    }
    const best = (s: number[]) => Math.min(...s);
    out.push({
      model: `${model.split('/')[1]} ${(loadNetwork(model).config.input_shape as number[]).join('×')}`,
      rows: n,
      normserveSeconds,
      normserveRowsPerSecond: n / best(normserveSeconds),
      torchSeconds,
      torchRowsPerSecond: torch ? n / best(torchSeconds) : undefined,
      normserveDelta,
      torchDelta,
    });
  }
  return out;
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

async function serve(repository: string): Promise<Server> {
  return start(
    ['--import', 'tsx', 'src/cli/server.ts'],
    await recalibrationServerEnv(repository),
    join(mkdtempSync(join(tmpdir(), 'normserve-bench-logs-')), 'server.log'),
  );
}

const postBody = (server: Server, contentType: string, body: Buffer) =>
  postRecalibration<{ samples: number; duration_ms: number }>(
    server.port,
    'exact',
    contentType,
    body,
  );

/** A streamed body (the NDJSON upload, written while it is read) through fetch(). */
async function postStreamed(server: Server, contentType: string, body: Buffer | Readable) {
  const response = await fetch(
    `http://127.0.0.1:${server.port}/v1/models/digits:recalibrate?mode=exact`,
    {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': contentType },
      body: body instanceof Readable ? (Readable.toWeb(body) as ReadableStream) : body,
      duplex: 'half',
    } as RequestInit,
  );
  const text = await response.text();
  if (response.status !== 201)
    throw new Error(`recalibrate answered ${response.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as { samples: number; duration_ms: number };
}

/**
 * NDJSON lines of the night rows as a sensor would write them (two decimals), rendered before
 * the upload starts so that the client's own work does not slow the upload or the predictions.
 */
function ndjsonBody(rows: number): { parts: Buffer[]; bytes: number } {
  const base = nightRows(1797);
  const lines: string[] = [];
  for (let r = 0; r < 1797; r++) {
    const values = Array.from(base.subarray(r * 64, (r + 1) * 64), (v) => Number(v.toFixed(2)));
    lines.push(`${JSON.stringify(values)}\n`);
  }
  const parts: Buffer[] = [];
  let bytes = 0;
  const per = 1024;
  for (let r = 0; r < rows; r += per) {
    let text = '';
    for (let i = r; i < Math.min(rows, r + per); i++) text += lines[i % 1797];
    const part = Buffer.from(text);
    parts.push(part);
    bytes += part.length;
  }
  return { parts, bytes };
}

export async function benchRecalibration(options: {
  rows: number;
  ndjsonRows: number;
  rounds: number;
}): Promise<RecalibrationBench> {
  const why = torchUnavailable();
  const torch = why === undefined;
  const dir = mkdtempSync(join(tmpdir(), 'normserve-bench-recal-'));
  try {
    const library = await libraryRows(options.rows, options.rounds, torch, dir);
    const digitsTorch = library[0]!.torchRowsPerSecond;
    const repository = join(dir, 'repository');
    copyBundledModel('digits', repository);
    const server = await serve(repository);
    const http: RecalibrationBench['http'] = [];
    let ndjson: RecalibrationBench['ndjson'];
    let floor: number[] = [];
    try {
      const data = nightRows(options.rows);
      const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      for (let r = 0; r < options.rounds; r++) {
        let outcome: { samples: number; duration_ms: number } | undefined;
        let wallSeconds = 0;
        const cpu = await measured(server, async () => {
          const started = performance.now();
          outcome = await postBody(server, 'application/octet-stream', body);
          wallSeconds = (performance.now() - started) / 1000;
          return { requests: 1 };
        });
        const rowsPerSecond = options.rows / wallSeconds;
        http.push({
          rows: outcome!.samples,
          bodyBytes: body.length,
          wallSeconds,
          durationMs: outcome!.duration_ms,
          serverCpuSeconds:
            cpu.serverCpuUsPerRequest === undefined ? undefined : cpu.serverCpuUsPerRequest / 1e6,
          ratioToLibrary: rowsPerSecond / library[0]!.normserveRowsPerSecond,
          rowsPerSecond,
          ratioToTorch: digitsTorch ? rowsPerSecond / digitsTorch : undefined,
        });
      }
      floor = await uploadFloorSeconds(body, options.rounds);
    } finally {
      await server.stop();
    }
    // A server of its own: the float32 requests' row blocks stay pooled for the next
    // recalibration (RowBlockPool), which would count in the idle RSS the NDJSON upload's RSS is
    // compared with.
    const fresh = await serve(repository);
    try {
      ndjson = await ndjsonUnderLoad(fresh, options.ndjsonRows);
    } finally {
      await fresh.stop();
    }
    return {
      torch: torch ? 'available' : why!,
      library,
      http,
      uploadFloorSeconds: floor,
      ndjson,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function ndjsonUnderLoad(
  server: Server,
  rows: number,
): Promise<RecalibrationBench['ndjson']> {
  const predictUrl = `http://127.0.0.1:${server.port}/v1/models/digits:predict`;
  const predictBody = JSON.stringify({ instances: [Array.from(nightRows(1))] });
  const predict = async () => {
    const started = performance.now();
    const response = await fetch(predictUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: predictBody,
    });
    await response.arrayBuffer();
    return { ok: response.status === 200, ms: performance.now() - started };
  };
  for (let i = 0; i < 50; i++) await predict();
  await new Promise((r) => setTimeout(r, 500));
  const idleRssMiB = rssMiB(server.pid);
  let peakRssMiB = idleRssMiB;
  const sampler = setInterval(() => {
    peakRssMiB = Math.max(peakRssMiB, rssMiB(server.pid));
  }, 100);
  let uploading = true;
  const latencies: number[] = [];
  let errors = 0;
  // One client asking for a prediction after another while the upload runs.
  const client = (async () => {
    while (uploading) {
      const r = await predict();
      if (r.ok) latencies.push(r.ms);
      else errors++;
    }
  })();
  const { parts, bytes } = ndjsonBody(rows);
  const stream = Readable.from(parts, { objectMode: false });
  const started = performance.now();
  try {
    await postStreamed(server, 'application/x-ndjson', stream);
  } finally {
    uploading = false;
    clearInterval(sampler);
    await client;
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    rows,
    bodyBytes: bytes,
    seconds,
    rowsPerSecond: rows / seconds,
    idleRssMiB,
    peakRssMiB,
    predictions: latencies.length,
    predictionErrors: errors,
    predictionP99Ms:
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? Number.NaN,
  };
}
