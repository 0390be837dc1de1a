/**
 * BatchNorm inputs whose mean is large against their spread (review 16: a feature of 1e5 ± 0.01):
 * the executors' sums are taken about a shift near the mean (ChannelSums), so `exact` and
 * `running` recalibration and the live drift moments keep the variance of the float32 values
 * to float32's resolution instead of losing log10(mean²/variance) of float64's 16 digits (14
 * here: the variance came out 50 % low). Checked against a float64 two-pass reference of the same
 * float32 values, on both executors.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';
import { LIVE_DRIFT_CLIP_SIGMAS } from '../../src/drift/index.js';
import {
  batchNormInputsOf,
  batchNormMoments,
  ChannelSums,
  clippedBatchNormTaps,
  compileNetwork,
  createExecutor,
  detectWasmSupport,
  type Executor,
  PlanExecutor,
} from '../../src/inference/index.js';
import { type BatchNorm, Rng, type Sequential } from '../../src/nn/index.js';
import { recalibrate } from '../../src/recalibration/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';

prepareWasmRuntime();

/**
 * A variance of float32 values from the executors' float64 sums against the two-pass float64
 * reference of the same values: relative. The sums' rounding is held to 2^−24 (M2_RELATIVE_TOLERANCE)
 * and running_var is stored in float32 (half an ulp, 3e−8): 1e−6 leaves room for both and is
 * 5e5 times tighter than the error this replaces (5e−1 at 1e5 ± 0.01, 2.3e−3 at 1e4 ± 0.01).
 */
const LARGE_MEAN_VARIANCE_RTOL = 1e-6;
/** Means of the same values: relative (float32 storage of running_mean: half an ulp). */
const LARGE_MEAN_MEAN_RTOL = 1e-7;
/**
 * A mean from float64 sums about a shift near it (live drift's running_mean), not stored in
 * float32: relative. The two-pass reference's own sum of the 4,096 rows rounds by up to
 * n·u = 4096 · 2^−53 ≈ 4.5e−13 of the mean, the shifted sums by far less (their terms are a few
 * σ): twice that.
 */
const SHIFTED_MEAN_RTOL = 1e-12;
/**
 * The least relative error of M2 summed about 0 that counts as the variance lost, not noise:
 * 1,000 times LARGE_MEAN_VARIANCE_RTOL. At 1e5 ± 0.01 the cancellation costs 14 of float64's 16
 * digits (about 5e−1 measured, src/inference/README.md), so the sums about 0 are far above it.
 */
const VARIANCE_LOST_RTOL = 1e-3;

const spec = (value: unknown): LayerSpec => layerSchema.parse(value);

/** The reviewer's features (big.py, big2.py): mean and standard deviation of each. */
const FEATURES: readonly (readonly [number, number])[] = [
  [1e7, 4],
  [1e5, 0.01],
  [3e3, 0.001],
  [1e4, 0.01],
  [1e6, 1],
  [100, 1e-4],
];
const F = FEATURES.length;

/** BatchNorm1d first, then a Linear: the BatchNorm reads the raw rows (no input transform). */
function network(): Sequential {
  const net = buildSequential(
    [
      spec({ type: 'batchnorm1d', num_features: F }),
      spec({ type: 'linear', in_features: F, out_features: 1 }),
    ],
    { init: new Rng(3), dropout: new Rng(3) },
  );
  return net.eval();
}

function rowsOf(rows: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * F }, (_, i) => {
    const [mean, sd] = FEATURES[i % F]!;
    return mean + rng.normal() * sd;
  });
}

/** Two-pass float64 mean and M2 per feature of rows first … first + count − 1. */
function twoPass(x: Float32Array, first: number, count: number) {
  const mean = new Float64Array(F);
  const m2 = new Float64Array(F);
  for (let c = 0; c < F; c++) {
    let s = 0;
    for (let r = first; r < first + count; r++) s += x[r * F + c]!;
    const m = s / count;
    let q = 0;
    for (let r = first; r < first + count; r++) q += (x[r * F + c]! - m) ** 2;
    mean[c] = m;
    m2[c] = q;
  }
  return { mean, m2 };
}

function expectRel(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, what: string) {
  for (let c = 0; c < want.length; c++) {
    const err = Math.abs(got[c]! - want[c]!) / Math.abs(want[c]!);
    expect(err, `${what}[${c}]: ${got[c]} vs ${want[c]}`).toBeLessThanOrEqual(rtol);
  }
}

const engines = ['js', ...(detectWasmSupport().simd ? (['wasm'] as const) : [])] as const;

describe('BatchNorm inputs with a large mean', () => {
  const rows = 4096;
  const x = rowsOf(rows, 16);
  const reference = twoPass(x, 0, rows);

  it('ChannelSums: about 0 the bound fails and the variance is lost; about the mean it holds', () => {
    const far = new ChannelSums(1);
    const near = new ChannelSums(1);
    near.shiftTo([1e5]);
    for (let r = 0; r < rows; r++) {
      for (const s of [far, near]) {
        const v = x[r * F + 1]! - s.shift[0]!;
        s.sum[0] = s.sum[0]! + v;
        s.sumSquares[0] = s.sumSquares[0]! + v * v;
        s.count++;
      }
    }
    expect(far.shiftTooFar()).toBe(true);
    expect(near.shiftTooFar()).toBe(false);
    const want = reference.m2[1]!;
    expect(Math.abs(far.moments().m2[0]! - want) / want).toBeGreaterThan(VARIANCE_LOST_RTOL);
    expect(Math.abs(near.moments().m2[0]! - want) / want).toBeLessThanOrEqual(
      LARGE_MEAN_VARIANCE_RTOL,
    );
    expect(() => near.shiftTo([0])).toThrow(/reset/);
  });

  for (const engine of engines) {
    it(`${engine}: exact recalibration gives the variance of the float32 values (running_mean 0: the first chunk measured again)`, async () => {
      const net = network();
      // Chunks of 1,000 rows: later chunks are summed about the mean of the one before.
      await recalibrate(net, undefined, F, x, {
        mode: 'exact',
        chunkRows: 1000,
        engine: { engine },
      });
      const bn = net.modules[0] as BatchNorm;
      const unbiased = reference.m2.map((m2) => m2 / (rows - 1));
      expectRel(bn.runningVar.data, unbiased, LARGE_MEAN_VARIANCE_RTOL, `${engine} running_var`);
      expectRel(
        bn.runningMean.data,
        reference.mean,
        LARGE_MEAN_MEAN_RTOL,
        `${engine} running_mean`,
      );
    });

    it(`${engine}: running recalibration averages each batch's exact variance`, async () => {
      const net = network();
      const batchSize = 512;
      await recalibrate(net, undefined, F, x, { mode: 'running', batchSize, engine: { engine } });
      const bn = net.modules[0] as BatchNorm;
      const average = new Float64Array(F);
      const batches = rows / batchSize;
      for (let b = 0; b < batches; b++) {
        const { m2 } = twoPass(x, b * batchSize, batchSize);
        for (let c = 0; c < F; c++) average[c] = average[c]! + m2[c]! / (batchSize - 1) / batches;
      }
      expectRel(bn.runningVar.data, average, LARGE_MEAN_VARIANCE_RTOL, `${engine} running_var`);
    });
  }

  if (detectWasmSupport().simd)
    it('wasm with a helper thread: the first BatchNorm measured off the calling thread, again about its own mean', async () => {
      const net = network();
      await recalibrate(net, undefined, F, x, {
        mode: 'exact',
        chunkRows: 1000,
        engine: nodeEngineOptions({ engine: 'wasm', threads: 2 }),
      });
      const bn = net.modules[0] as BatchNorm;
      const unbiased = reference.m2.map((m2) => m2 / (rows - 1));
      expectRel(bn.runningVar.data, unbiased, LARGE_MEAN_VARIANCE_RTOL, 'helper running_var');
    });

  it('live drift: the clipped taps of the served plan, summed about running_mean, on both executors', () => {
    const net = network();
    const bn = net.modules[0] as BatchNorm;
    // Running statistics near the data (the clip at ±16 σ leaves every row as it is), the mean
    // half a σ off.
    FEATURES.forEach(([mean, sd], c) => {
      bn.runningMean.data[c] = mean + 0.5 * sd;
      bn.runningVar.data[c] = 1.2 * sd * sd;
    });
    const plan = compileNetwork(net, undefined, [F]);
    const inputs = batchNormInputsOf(plan);
    const taps = clippedBatchNormTaps(
      inputs,
      [{ mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps }],
      LIVE_DRIFT_CLIP_SIGMAS,
    );
    const executors: Executor[] = [new PlanExecutor(plan, 512)];
    const wasm = createExecutor(plan, { engine: 'wasm', maxBatchSize: 512 });
    if (wasm.engine === 'wasm') executors.push(wasm);
    for (const executor of executors) {
      const probe = executor.createProbe(taps);
      // Served batches of 512 rows; the probe gathers them all, as between two folds.
      for (let r = 0; r < rows; r += 512)
        executor.run(x.subarray(r * F, (r + 512) * F), 512, probe);
      const moments = batchNormMoments(inputs[0]!, probe.sums[0]!);
      expect(moments.count).toBe(rows);
      expectRel(moments.m2, reference.m2, LARGE_MEAN_VARIANCE_RTOL, `${executor.engine} M2`);
      expectRel(moments.mean, reference.mean, SHIFTED_MEAN_RTOL, `${executor.engine} mean`);
      executor.close();
    }
  });
});
