/**
 * The cost of the live drift statistics (issue 12), side by side in one run:
 * - serving: two server processes (WORKERS=1, wasm) on the bundled digits model, one with
 *   DRIFT_SAMPLE_FRACTION=1 (every engine call carries the statistics probe: the default) and one
 *   with 0 (no probe), loaded alternately by autocannon over several rounds — 1-row JSON predicts
 *   and 256-row float32 predicts; the median of each and the on/off ratio;
 * - engine: CompiledModel.forward without a probe, with the exact taps and with the clipped ones
 *   live drift reads, on the same executor (the taps alone, without HTTP), interleaved rounds;
 * - service: runSources with and without the drift service observing (taps, windows, check).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LIVE_DRIFT_CLIP_SIGMAS } from '../src/drift/index.js';
import {
  batchNormInputsOf,
  batchNormTaps,
  CompiledModel,
  clippedBatchNormTaps,
  type StatisticsProbe,
} from '../src/inference/index.js';
import { type BatchNorm, namedModules } from '../src/nn/index.js';
import {
  DEFAULT_DRIFT_THRESHOLD,
  DriftService,
  float32Rows,
  loadModelDirectory,
  ModelRegistry,
  runSources,
} from '../src/service/index.js';
import { bundledVersionDir, copyBundledModel } from '../test/helpers/bundled-models.js';
import { DIGITS_ROW, freePort, load, measured, start } from './http.js';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;

export interface DriftBenchRow {
  what: string;
  rowsPerRequest: number;
  /** Requests (serving) or engine calls (engine) per second, median of the rounds. */
  off: number;
  on: number;
  /** on / off. */
  ratio: number;
  /**
   * Serving: CPU time of the server process per request, µs (median of the rounds), off and on,
   * and off / on — what the statistics cost in CPU, which a machine shared with other work
   * disturbs less than the throughput (undefined without /proc).
   */
  cpuOffUs?: number;
  cpuOnUs?: number;
  cpuRatio?: number;
}

export async function benchDrift(
  options: { durationSeconds?: number; rounds?: number } = {},
): Promise<DriftBenchRow[]> {
  // Many short rounds rather than a few long ones: on a shared machine the load moves between
  // rounds, and the median of more rounds moves less with it.
  const duration = options.durationSeconds ?? 3;
  const rounds = options.rounds ?? 5;
  const rows: DriftBenchRow[] = [];
  const repository = mkdtempSync(join(tmpdir(), 'normserve-bench-drift-'));
  copyBundledModel('digits', repository);
  const env = {
    MODEL_REPOSITORY: repository,
    MODEL_POLL_INTERVAL_MS: '0',
    ADMIN_TOKEN: 'bench-admin-token-0123456789',
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    WORKERS: '1',
    GRPC_PORT: '0',
  };
  const serve = async (fraction: string) =>
    start(
      ['--import', 'tsx', 'src/cli/server.ts'],
      {
        ...env,
        PORT: String(await freePort()),
        DRIFT_SAMPLE_FRACTION: fraction,
        // The server logs its listening line at info.
        LOG_LEVEL: 'info',
      },
      join(mkdtempSync(join(tmpdir(), 'normserve-bench-logs-')), `drift-${fraction}.log`),
    );
  const off = await serve('0');
  const on = await serve('1');
  const tenth = await serve('0.1');
  try {
    const predict = (port: number) => `http://127.0.0.1:${port}/v1/models/digits:predict`;
    const json1 = JSON.stringify({ instances: [DIGITS_ROW] });
    const rows256 = Buffer.from(
      Float32Array.from(Array.from({ length: 256 }, () => DIGITS_ROW).flat()).buffer,
    );
    const cases = [
      {
        what: 'serving: predict JSON',
        n: 1,
        body: json1,
        headers: { 'content-type': 'application/json' },
      },
      {
        what: 'serving: predict float32 in/out',
        n: 256,
        body: rows256,
        headers: { 'content-type': 'application/octet-stream', accept: 'application/octet-stream' },
      },
    ];
    for (const c of cases) {
      const offRuns: { rate: number; cpu: number | undefined }[] = [];
      const onRuns: typeof offRuns = [];
      const tenthRuns: typeof offRuns = [];
      const rate = async (s: typeof off) => {
        const r = await measured(s, async () => {
          const result = await load(predict(s.port), c.body, c.headers, duration, 8);
          return { requests: result.requests.total, rate: result.requests.average };
        });
        return { rate: r.rate, cpu: r.serverCpuUsPerRequest };
      };
      // Each round in another order (off, on, 0.1; on, 0.1, off; …): a server loaded last in every
      // round would carry whatever drifts within a round (the machine's load, the JIT) alone.
      const servers = [
        { server: off, runs: offRuns },
        { server: on, runs: onRuns },
        { server: tenth, runs: tenthRuns },
      ];
      for (let r = 0; r < rounds; r++) {
        for (let k = 0; k < servers.length; k++) {
          const s = servers[(r + k) % servers.length]!;
          s.runs.push(await rate(s.server));
        }
      }
      const a = median(offRuns.map((r) => r.rate));
      const b = median(onRuns.map((r) => r.rate));
      const d = median(tenthRuns.map((r) => r.rate));
      const cpu = (runs: typeof offRuns) =>
        runs.every((r) => r.cpu !== undefined) ? median(runs.map((r) => r.cpu!)) : undefined;
      const cpuOff = cpu(offRuns);
      const cpuRow = (cpuOn: number | undefined) =>
        cpuOff === undefined || cpuOn === undefined
          ? {}
          : { cpuOffUs: cpuOff, cpuOnUs: cpuOn, cpuRatio: cpuOff / cpuOn };
      rows.push({
        what: c.what,
        rowsPerRequest: c.n,
        off: a,
        on: b,
        ratio: b / a,
        ...cpuRow(cpu(onRuns)),
      });
      rows.push({
        what: `${c.what}, fraction 0.1`,
        rowsPerRequest: c.n,
        off: a,
        on: d,
        ratio: d / a,
        ...cpuRow(cpu(tenthRuns)),
      });
    }
    const scraped = await on.get('/metrics');
    const gathered = scraped.split('\n').find((l) => l.startsWith('normserve_drift_rows{'));
    if (!gathered) throw new Error('the drift-on server gathered no statistics');
  } finally {
    await Promise.all([off.stop(), on.stop(), tenth.stop()]);
    rmSync(repository, { recursive: true, force: true });
  }

  // The taps alone: the same executor with and without the probe, on digits (per-feature taps)
  // and digits-cnn (per-channel taps of 8×8 planes; the same 64 pixels as a [1, 8, 8] image).
  for (const name of ['digits', 'digits-cnn'] as const) {
    const { checkpoint } = await loadModelDirectory(bundledVersionDir(name));
    const config = checkpoint.config;
    const model = new CompiledModel(
      checkpoint.network,
      config.input_transform,
      256,
      config.input_shape,
    );
    // The exact taps (recalibration's) and the clipped ones live drift reads (each value winsorized
    // at its channel's running_mean ± LIVE_DRIFT_CLIP_SIGMAS running σ), against none.
    const inputs = batchNormInputsOf(model.plan);
    const modules = new Map(namedModules(checkpoint.network));
    const running = inputs.map((b) => {
      const bn = modules.get(b.path) as BatchNorm;
      return { mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps };
    });
    const exact = model.executor.createProbe(batchNormTaps(inputs));
    const clipped = model.executor.createProbe(
      clippedBatchNormTaps(inputs, running, LIVE_DRIFT_CLIP_SIGMAS),
    );
    for (const batch of [1, 256]) {
      const input = Float32Array.from(Array.from({ length: batch }, () => DIGITS_ROW).flat());
      const callsPerSecond = (probe: StatisticsProbe | undefined) => {
        const budgetMs = 300;
        const t0 = performance.now();
        let calls = 0;
        while (performance.now() - t0 < budgetMs) {
          for (let i = 0; i < 50; i++) model.forward(input, batch, true, probe);
          calls += 50;
        }
        return (calls * 1000) / (performance.now() - t0);
      };
      const offRuns: number[] = [];
      const exactRuns: number[] = [];
      const clippedRuns: number[] = [];
      for (let r = 0; r < rounds + 2; r++) {
        offRuns.push(callsPerSecond(undefined));
        exactRuns.push(callsPerSecond(exact));
        clippedRuns.push(callsPerSecond(clipped));
        exact.reset();
        clipped.reset();
      }
      const a = median(offRuns);
      for (const [what, runs] of [
        ['exact taps', exactRuns],
        ['live drift taps (clipped)', clippedRuns],
      ] as const) {
        const b = median(runs);
        rows.push({
          what: `engine (${model.executor.engine}): ${name} forward, ${what}`,
          rowsPerRequest: batch,
          off: a,
          on: b,
          ratio: b / a,
        });
      }
    }
    model.close();
  }
  rows.push(...(await serviceRows()));
  return rows;
}

/**
 * What a request pays for the statistics beyond the engine: runSources (the service's engine call
 * with softmax and labels) with the drift service as its observer (probe, fold into windows, the
 * recommendation check, the recent-rows ring) against no observer, on one served version. Many
 * short alternating rounds; the best of each side (the rounds least disturbed by other work on the
 * machine: on a loaded machine the medians of long rounds measure the scheduler).
 */
async function serviceRows(): Promise<DriftBenchRow[]> {
  const repository = mkdtempSync(join(tmpdir(), 'normserve-bench-drift-service-'));
  copyBundledModel('digits', repository);
  const registry = new ModelRegistry(repository, { maxBatchSize: 256 });
  await registry.refresh();
  const drift = new DriftService({
    sampleFraction: 1,
    windowMs: 60_000,
    windows: 10,
    threshold: DEFAULT_DRIFT_THRESHOLD,
    minRows: 100,
    autoRecalibrate: 'off',
    autoMinRows: 512,
    sampleRows: 2048,
    sampleBytes: 16 * 2 ** 20,
  });
  drift.useRegistry(registry);
  const served = registry.resolve('digits');
  const rows: DriftBenchRow[] = [];
  for (const batch of [1, 256]) {
    const input = Float32Array.from(Array.from({ length: batch }, () => DIGITS_ROW).flat());
    const callsPerSecond = (observer: DriftService | undefined) => {
      const t0 = performance.now();
      let calls = 0;
      while (performance.now() - t0 < 50) {
        for (let i = 0; i < 10; i++)
          runSources(served, [float32Rows(input, batch, 64)], true, observer);
        calls += 10;
      }
      return (calls * 1000) / (performance.now() - t0);
    };
    let off = 0;
    let on = 0;
    for (let r = 0; r < 40; r++) {
      off = Math.max(off, callsPerSecond(undefined));
      on = Math.max(on, callsPerSecond(drift));
    }
    rows.push({
      what: 'service: runSources, best round',
      rowsPerRequest: batch,
      off,
      on,
      ratio: on / off,
    });
  }
  registry.close();
  rmSync(repository, { recursive: true, force: true });
  return rows;
}
