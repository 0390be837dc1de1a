/**
 * The statistics primitive: executors add per-channel float64 Σx and Σx² of tapped tensors while
 * they run a plan (or the prefix a probe needs). Checked against sums computed from the outputs of
 * truncated plans, against the BatchNorm inputs the unfused network sees (forward pre-hooks), on
 * both executors, with batches split any way, across helper threads, and after updateParameters.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';
import {
  batchNormClip,
  batchNormInputsOf,
  batchNormMoments,
  batchNormTaps,
  ChannelSums,
  type CompiledPlan,
  clippedBatchNormTaps,
  compileNetwork,
  createExecutor,
  detectWasmSupport,
  type Executor,
  M2_RELATIVE_TOLERANCE,
  PlanExecutor,
  type StatisticsTap,
  stepOutputWidth,
  type TapClip,
  tensorChannels,
  WasmExecutor,
} from '../../src/inference/index.js';
import {
  BatchNorm,
  type FeatureTransform,
  namedModules,
  Rng,
  type Sequential,
} from '../../src/nn/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';
import { hookedInputSums, winsorize } from '../helpers/batch-norm-hooks.js';
import { STATS_RTOL } from '../helpers/tolerances.js';

prepareWasmRuntime();
const relaxedSimd = detectWasmSupport().relaxedSimd;

/** Sums of the same float32 values added in another order (chunks, threads, executors' loops). */
const SUM_ORDER_RTOL = 1e-12;
/**
 * The two executors' BatchNorm inputs differ by float32 roundings of the layers before (the JS
 * executor sums dot products in float64, the wasm GEMM in float32 with FMA): in σ for the means,
 * relative for the M2.
 */
const ENGINE_AGREEMENT_RTOL = 1e-5;

const spec = (value: unknown): LayerSpec => layerSchema.parse(value);
const linear = (i: number, o: number) => spec({ type: 'linear', in_features: i, out_features: o });
const bn1d = (c: number) => spec({ type: 'batchnorm1d', num_features: c });
const bn2d = (c: number) => spec({ type: 'batchnorm2d', num_features: c });
const relu = spec({ type: 'relu' });
const conv = (i: number, o: number, extra: Record<string, unknown> = {}) =>
  spec({ type: 'conv2d', in_channels: i, out_channels: o, kernel_size: 3, padding: 1, ...extra });

/** Every way a BatchNorm ends up in a flat plan: first, folded before, pending, composed, GELU. */
const MLP: LayerSpec[] = [
  bn1d(12),
  linear(12, 20),
  bn1d(20),
  relu,
  spec({ type: 'dropout', p: 0.5 }),
  linear(20, 16),
  spec({ type: 'gelu', approximate: 'none' }),
  bn1d(16),
  linear(16, 9),
  bn1d(9),
  bn1d(9),
  spec({ type: 'leaky_relu', negative_slope: 0.1 }),
  linear(9, 5),
];

const CNN: LayerSpec[] = [
  conv(2, 6),
  bn2d(6),
  relu,
  spec({
    type: 'residual',
    layers: [conv(6, 6, { bias: false }), bn2d(6), relu, conv(6, 6, { bias: false }), bn2d(6)],
  }),
  spec({ type: 'maxpool2d', kernel_size: 2 }),
  bn2d(6),
  conv(6, 8),
  bn2d(8),
  relu,
  spec({ type: 'adaptive_avgpool2d', output_size: 1 }),
  spec({ type: 'flatten' }),
  linear(8, 4),
];

/**
 * BatchNorm1d after a Flatten, which emits no step: of a convolution's output as [C·H, W] (a
 * partial Flatten: C·H channels of W values), then as [C·H·W] features (one value per row each,
 * PyTorch's per-feature statistics). Their taps are finer than the convolution's C channels.
 */
const FLATTENED_CNN: LayerSpec[] = [
  conv(2, 3),
  relu,
  spec({ type: 'flatten', start_dim: 1, end_dim: 2 }),
  bn1d(12),
  spec({ type: 'flatten' }),
  bn1d(48),
  linear(48, 5),
];

/** The review's case: nothing between an unpadded convolution, the Flatten and the BatchNorm1d. */
const CONV_FLATTEN_BN: LayerSpec[] = [
  conv(1, 2, { padding: 0 }),
  spec({ type: 'flatten' }),
  bn1d(8),
  linear(8, 3),
];

/** A BatchNorm1d over the raw [C, H, W] input, flattened. */
const INPUT_FLATTEN_BN: LayerSpec[] = [spec({ type: 'flatten' }), bn1d(8), linear(8, 3)];

/** Random weights and BatchNorm statistics (nested ones too), eval mode. */
function randomNetwork(layers: LayerSpec[], seed: number): Sequential {
  const rng = new Rng(seed);
  const network = buildSequential(layers, { init: rng, dropout: rng });
  for (const [, m] of namedModules(network)) {
    if (!(m instanceof BatchNorm)) continue;
    for (let k = 0; k < m.numFeatures; k++) {
      m.runningMean.data[k] = rng.normal() * 0.5;
      m.runningVar.data[k] = 0.2 + 2 * rng.next();
      m.weight!.value.data[k] = (rng.next() < 0.5 ? -1 : 1) * (0.5 + rng.next());
      m.bias!.value.data[k] = rng.normal() * 0.3;
    }
  }
  return network.eval();
}

const transformOf = (width: number, seed: number): FeatureTransform => {
  const rng = new Rng(seed);
  return {
    shift: Float32Array.from({ length: width }, () => rng.normal()),
    scale: Float32Array.from({ length: width }, () => 0.5 + rng.next()),
  };
};

function rowsOf(rows: number, width: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * width }, () => rng.normal() * 2 + 0.5);
}

/** The plan's first `count` steps as a plan of their own (the last one without its activation). */
function truncated(plan: CompiledPlan, count: number, preActivation: boolean): CompiledPlan {
  const steps = plan.steps
    .slice(0, count)
    .map((s, i) =>
      preActivation && i === count - 1 ? { ...s, activation: { kind: 'none' as const } } : s,
    );
  const width = count === 0 ? plan.inputWidth : stepOutputWidth(plan.steps[count - 1]!);
  return { ...plan, steps, outputWidth: width, outputShape: [width] };
}

/** Σx and Σx² per channel of a [rows, width] array, in float64. */
function directSums(y: Float32Array, rows: number, channels: number): ChannelSums {
  const s = new ChannelSums(channels);
  const width = y.length / rows;
  const spatial = width / channels;
  for (let i = 0; i < y.length; i++) {
    const c = Math.floor((i % width) / spatial);
    s.sum[c] = s.sum[c]! + y[i]!;
    s.sumSquares[c] = s.sumSquares[c]! + y[i]! * y[i]!;
  }
  s.count = rows * spatial;
  return s;
}

/** directSums of the values winsorized per channel at clip's bounds. */
function clippedSums(y: Float32Array, rows: number, clip: TapClip): ChannelSums {
  const channels = clip.lower.length;
  const s = new ChannelSums(channels);
  const width = y.length / rows;
  const spatial = width / channels;
  for (let i = 0; i < y.length; i++) {
    const c = Math.floor((i % width) / spatial);
    const v = winsorize(y[i]!, clip.lower[c]!, clip.upper[c]!);
    s.sum[c] = s.sum[c]! + v;
    s.sumSquares[c] = s.sumSquares[c]! + v * v;
  }
  s.count = rows * spatial;
  return s;
}

/**
 * The taps again, each clipped at its channels' mean ± `sigmas` standard deviations of `x`'s
 * values there (from an exact pass): a good share of every tensor's values lies outside.
 */
function clippedCopies(
  plan: CompiledPlan,
  taps: readonly StatisticsTap[],
  x: Float32Array,
  rows: number,
  sigmas: number,
): StatisticsTap[] {
  const executor = new PlanExecutor(plan, 1024);
  const probe = executor.createProbe(taps);
  executor.accumulate(x, rows, probe);
  return taps.map((tap, i) => {
    const { count, mean, m2 } = probe.sums[i]!.moments();
    const sd = (c: number) => Math.sqrt(m2[c]! / count);
    return {
      ...tap,
      clip: {
        lower: Float32Array.from(mean, (m, c) => m - sigmas * sd(c)),
        upper: Float32Array.from(mean, (m, c) => m + sigmas * sd(c)),
      },
    };
  });
}

function expectSumsClose(a: ChannelSums, b: ChannelSums, rtol: number, what: string): void {
  expect(a.count, `${what}: count`).toBe(b.count);
  for (let c = 0; c < a.channels; c++) {
    const scale = Math.max(Math.abs(b.sumSquares[c]!), 1e-30);
    expect(
      Math.abs(a.sum[c]! - b.sum[c]!) / Math.sqrt(scale * b.count),
      `${what}: Σx[${c}]`,
    ).toBeLessThanOrEqual(rtol);
    expect(
      Math.abs(a.sumSquares[c]! - b.sumSquares[c]!) / scale,
      `${what}: Σx²[${c}]`,
    ).toBeLessThanOrEqual(rtol);
  }
}

/** Every tensor of the plan, at both readings where a step has an activation. */
function everyTap(plan: CompiledPlan): StatisticsTap[] {
  const channels = tensorChannels(plan);
  const taps: StatisticsTap[] = [{ step: -1, point: 'output', channels: channels[0]! }];
  plan.steps.forEach((s, i) => {
    taps.push({ step: i, point: 'output', channels: channels[i + 1]! });
    if (s.activation.kind !== 'none')
      taps.push({ step: i, point: 'pre_activation', channels: channels[i + 1]! });
  });
  return taps;
}

const executors = (plan: CompiledPlan, maxBatchSize: number): Executor[] => {
  const list: Executor[] = [new PlanExecutor(plan, maxBatchSize)];
  const wasm = createExecutor(plan, { engine: 'wasm', maxBatchSize, relaxedSimd });
  if (wasm.engine === 'wasm') list.push(wasm);
  return list;
};

const cases = [
  { name: 'MLP', layers: MLP, shape: [12], transform: transformOf(12, 3) },
  { name: 'CNN', layers: CNN, shape: [2, 6, 6], transform: undefined },
  {
    name: 'CNN, BN1d after Flatten',
    layers: FLATTENED_CNN,
    shape: [2, 4, 4],
    transform: undefined,
  },
  {
    name: 'conv → flatten → BN1d',
    layers: CONV_FLATTEN_BN,
    shape: [1, 4, 4],
    transform: undefined,
  },
  {
    name: 'input → flatten → BN1d',
    layers: INPUT_FLATTEN_BN,
    shape: [2, 2, 2],
    transform: transformOf(8, 4),
  },
] as const;

describe('statistics taps', () => {
  for (const c of cases) {
    const network = randomNetwork([...c.layers], 11);
    const plan = compileNetwork(network, c.transform, c.shape);
    const rows = 301;
    const x = rowsOf(rows, plan.inputWidth, 5);

    it(`${c.name}: every tensor's sums equal those of a truncated plan's outputs`, () => {
      // The wasm engine runs both (the CNN on the convolution kernels).
      if (detectWasmSupport().simd) expect(executors(plan, 1)).toHaveLength(2);
      for (const executor of executors(plan, 128)) {
        const taps = everyTap(plan);
        const probe = executor.createProbe(taps);
        executor.accumulate(x, rows, probe);
        taps.forEach((tap, i) => {
          // save_skip keeps a copy and passes its input on: its output is the plan before it (a
          // plan ending in save_skip is no plan the compiler makes; the wasm engine writes no
          // output for it).
          const count = plan.steps[tap.step]?.op === 'save_skip' ? tap.step : tap.step + 1;
          const reference = createExecutor(truncated(plan, count, tap.point === 'pre_activation'), {
            engine: executor.engine,
            maxBatchSize: 128,
            relaxedSimd,
          });
          const y = count <= 0 ? x : reference.run(x, rows);
          expectSumsClose(
            probe.sums[i]!,
            directSums(y, rows, tap.channels),
            SUM_ORDER_RTOL,
            `${executor.engine} step ${tap.step} ${tap.point}`,
          );
        });
      }
    });

    it(`${c.name}: clipped BatchNorm taps winsorize the inputs at running_mean ± K·√(running_var + ε)`, () => {
      // K = 1: most values of these random networks' BatchNorm inputs lie beyond a bound.
      const K = 1;
      const inputs = batchNormInputsOf(plan);
      const modules = new Map(namedModules(network));
      const running = inputs.map((b) => {
        const bn = modules.get(b.path) as BatchNorm;
        return { mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps };
      });
      // The unfused network's inputs, winsorized in x's own units.
      const { sums: hooked, clipped } = hookedInputSums(network, c.transform, c.shape, x, rows, K);
      expect(clipped).toBeGreaterThan(0.2 * rows * inputs.length);
      const perEngine = executors(plan, 1024).map((executor) => {
        const probe = executor.createProbe(clippedBatchNormTaps(inputs, running, K));
        executor.run(x, rows, probe);
        return inputs.map((b, i) => batchNormMoments(b, probe.sums[i]!));
      });
      // A channel whose inputs all lie beyond one bound has M2 = 0: both differences in units of
      // the running σ (the drift score's yardstick) rather than of the live one.
      inputs.forEach((b, i) => {
        const reference = hooked.get(b.path)!.moments();
        const sigma = (ch: number) => Math.sqrt(running[i]!.variance[ch]! + running[i]!.eps);
        const expectClose = (
          a: { count: number; mean: Float64Array; m2: Float64Array },
          ref: { count: number; mean: Float64Array; m2: Float64Array },
          rtol: number,
          what: string,
        ) => {
          for (let ch = 0; ch < b.channels; ch++) {
            expect(Math.abs(a.mean[ch]! - ref.mean[ch]!) / sigma(ch), `${what} mean`).toBeLessThan(
              rtol,
            );
            expect(
              Math.abs(a.m2[ch]! - ref.m2[ch]!) / (ref.count * sigma(ch) ** 2),
              `${what} M2`,
            ).toBeLessThan(rtol);
          }
        };
        for (const moments of perEngine) expectClose(moments[i]!, reference, STATS_RTOL, b.path);
        if (perEngine.length === 2)
          expectClose(
            perEngine[0]![i]!,
            perEngine[1]![i]!,
            ENGINE_AGREEMENT_RTOL,
            `${b.path} js/wasm`,
          );
      });
    });

    it(`${c.name}: the BatchNorm inputs are those the unfused network sees`, () => {
      const inputs = batchNormInputsOf(plan);
      const hooked = hookedInputSums(network, c.transform, c.shape, x, rows).sums;
      expect(inputs.map((b) => b.path)).toEqual([...hooked.keys()]);
      const perEngine = executors(plan, 1024).map((executor) => {
        const probe = executor.createProbe(batchNormTaps(inputs));
        const out = executor.run(x, rows, probe);
        expect(out).toEqual(executor.run(x, rows));
        return inputs.map((b, i) => batchNormMoments(b, probe.sums[i]!));
      });
      inputs.forEach((b, i) => {
        const reference = hooked.get(b.path)!.moments();
        for (const moments of perEngine) {
          for (let ch = 0; ch < b.channels; ch++) {
            const sigma = Math.sqrt(reference.m2[ch]! / reference.count);
            expect(
              Math.abs(moments[i]!.mean[ch]! - reference.mean[ch]!) / sigma,
              `${b.path} mean`,
            ).toBeLessThan(STATS_RTOL);
            expect(
              Math.abs(moments[i]!.m2[ch]! / reference.m2[ch]! - 1),
              `${b.path} M2`,
            ).toBeLessThan(STATS_RTOL);
          }
        }
        if (perEngine.length === 2) {
          const [js, wasm] = perEngine;
          for (let ch = 0; ch < b.channels; ch++) {
            const sigma = Math.sqrt(js![i]!.m2[ch]! / js![i]!.count);
            expect(Math.abs(js![i]!.mean[ch]! - wasm![i]!.mean[ch]!) / sigma).toBeLessThan(
              ENGINE_AGREEMENT_RTOL,
            );
            expect(Math.abs(js![i]!.m2[ch]! / wasm![i]!.m2[ch]! - 1)).toBeLessThan(
              ENGINE_AGREEMENT_RTOL,
            );
          }
        }
      });
    });

    it(`${c.name}: clipped taps sum every value winsorized at its channel's bounds, beside the exact ones`, () => {
      // Every tensor read three ways at once (a chain of records in the wasm engine): exact,
      // clipped at ±0.75 σ and at ±1.5 σ of its own values, so a good share is clipped.
      const exact = everyTap(plan);
      const taps = [
        ...exact,
        ...clippedCopies(plan, exact, x, rows, 0.75),
        ...clippedCopies(plan, exact, x, rows, 1.5),
      ];
      for (const executor of executors(plan, 128)) {
        const probe = executor.createProbe(taps);
        expect(new Set(probe.sums).size).toBe(taps.length);
        executor.accumulate(x, rows, probe);
        // A served call reads them too (run: the pre-activation taps activate in the same pass).
        const served = executor.createProbe(taps);
        expect(executor.run(x, rows, served)).toEqual(executor.run(x, rows));
        let clipped = 0;
        taps.forEach((tap, i) => {
          const count = plan.steps[tap.step]?.op === 'save_skip' ? tap.step : tap.step + 1;
          const reference = createExecutor(truncated(plan, count, tap.point === 'pre_activation'), {
            engine: executor.engine,
            maxBatchSize: 128,
            relaxedSimd,
          });
          const y = count <= 0 ? x : reference.run(x, rows);
          const what = `${executor.engine} step ${tap.step} ${tap.point} ${tap.clip ? 'clipped' : 'exact'}`;
          const expected = tap.clip
            ? clippedSums(y, rows, tap.clip)
            : directSums(y, rows, tap.channels);
          expectSumsClose(probe.sums[i]!, expected, SUM_ORDER_RTOL, what);
          expectSumsClose(served.sums[i]!, expected, SUM_ORDER_RTOL, `${what} (run)`);
          if (tap.clip)
            clipped += y.filter((v, k) => {
              const ch = Math.floor((k % (y.length / rows)) / (y.length / rows / tap.channels));
              return v < tap.clip!.lower[ch]! || v > tap.clip!.upper[ch]!;
            }).length;
        });
        expect(clipped).toBeGreaterThan(0.1 * taps.length * rows);
      }
    });

    it(`${c.name}: sums do not depend on how the rows are batched`, () => {
      for (const executor of executors(plan, 64)) {
        const exact = everyTap(plan);
        const taps = [...exact, ...clippedCopies(plan, exact, x, rows, 0.75)];
        const whole = executor.createProbe(taps);
        executor.accumulate(x, rows, whole);
        const pieces = executor.createProbe(taps);
        let row = 0;
        for (const size of [1, 7, 64, 100, 3]) {
          const n = Math.min(size, rows - row);
          executor.accumulate(
            x.subarray(row * plan.inputWidth, (row + n) * plan.inputWidth),
            n,
            pieces,
          );
          row += n;
        }
        executor.run(x.subarray(row * plan.inputWidth), rows - row, pieces);
        taps.forEach((tap, i) => {
          expectSumsClose(
            pieces.sums[i]!,
            whole.sums[i]!,
            SUM_ORDER_RTOL,
            `${executor.engine} ${tap.step}`,
          );
        });
        whole.reset();
        expect(whole.sums.every((s) => s.count === 0 && s.sum.every((v) => v === 0))).toBe(true);
      }
    });

    it(`${c.name}: a probe's sums hold its own calls' rows, whatever runs between them`, () => {
      // The wasm engine keeps a run() probe's sums in its accumulators across calls and collects
      // them when they are read: plain calls, another probe's calls and reads in between must
      // neither add to them nor lose any.
      for (const executor of executors(plan, 64)) {
        const taps = everyTap(plan);
        const reference = executor.createProbe(taps);
        executor.accumulate(x, rows, reference);
        const live = executor.createProbe(taps);
        const other = executor.createProbe(taps);
        const slice = (from: number, to: number) =>
          x.subarray(from * plan.inputWidth, to * plan.inputWidth);
        executor.run(slice(0, 100), 100, live);
        executor.run(slice(0, 50), 50); // plain: not gathered
        executor.run(slice(100, 101), 1, live);
        executor.accumulate(slice(0, 30), 30, other);
        executor.run(slice(101, 200), 99, live);
        expect(live.sums[0]!.count).toBe(200 * (plan.inputWidth / taps[0]!.channels));
        executor.run(slice(0, 10), 10, other);
        executor.run(slice(200, rows), rows - 200, live);
        executor.run(slice(0, 5), 5);
        taps.forEach((tap, i) => {
          expectSumsClose(
            live.sums[i]!,
            reference.sums[i]!,
            SUM_ORDER_RTOL,
            `${executor.engine} ${tap.step} ${tap.point}`,
          );
        });
        expect(other.sums[0]!.count).toBe(40 * (plan.inputWidth / taps[0]!.channels));
        // A reset drops what is still pending too.
        executor.run(slice(0, 20), 20, live);
        live.reset();
        executor.run(slice(0, 7), 7, live);
        expect(live.sums[0]!.count).toBe(7 * (plan.inputWidth / taps[0]!.channels));
      }
    });
  }

  it('helper threads add their rows into the same sums', async () => {
    const network = randomNetwork(MLP, 2);
    const plan = compileNetwork(network, undefined, [12]);
    const { spawnHelper } = nodeEngineOptions({});
    const one = new WasmExecutor(plan, { maxBatchSize: 2048, threads: 1, relaxedSimd });
    const two = new WasmExecutor(plan, {
      maxBatchSize: 2048,
      threads: 2,
      relaxedSimd,
      spawnHelper,
      parallelMinFlops: 0,
    });
    try {
      await two.ready();
      const rows = 2000;
      const x = rowsOf(rows, 12, 9);
      const exact = everyTap(plan);
      const taps = [...exact, ...clippedCopies(plan, exact, x, rows, 0.75)];
      const a = one.createProbe(taps);
      const b = two.createProbe(taps);
      one.accumulate(x, rows, a);
      const before = two.parallelCalls;
      two.accumulate(x, rows, b);
      if (two.readyHelpers > 0) expect(two.parallelCalls).toBeGreaterThan(before);
      taps.forEach((tap, i) => {
        expectSumsClose(b.sums[i]!, a.sums[i]!, SUM_ORDER_RTOL, `step ${tap.step}`);
      });
    } finally {
      two.close();
    }
  });

  it('updateParameters loads a refolded plan; another structure is refused', () => {
    const network = randomNetwork(MLP, 4);
    const plan = compileNetwork(network, undefined, [12]);
    const x = rowsOf(50, 12, 1);
    for (const executor of executors(plan, 64)) {
      const bn = namedModules(network).find(([p]) => p === '2')![1] as BatchNorm;
      const saved = bn.runningMean.data.slice();
      bn.runningMean.data.fill(3);
      const refolded = compileNetwork(network, undefined, [12]);
      bn.runningMean.data.set(saved);
      const fresh = createExecutor(refolded, {
        engine: executor.engine,
        maxBatchSize: 64,
        relaxedSimd,
      });
      expect(executor.run(x, 50)).not.toEqual(fresh.run(x, 50));
      executor.updateParameters(refolded);
      expect(executor.plan).toBe(refolded);
      expect(executor.run(x, 50)).toEqual(fresh.run(x, 50));
      const other = compileNetwork(randomNetwork([linear(12, 3)], 1), undefined, [12]);
      expect(() => executor.updateParameters(other)).toThrow(/different steps/);
    }
  });

  it('clips finite values beyond the bounds to them, and makes ±∞ and NaN NaN, per feature and per channel', () => {
    // The input tap (step −1) reads the rows as they are. 7 features: one vector of four and
    // a scalar tail of three; 3 channels of 3×3: two vectors of four and a tail of one each.
    // Value 0 is NaN (channel 0 of both), value 10 +∞ (feature 3, channel 1).
    const values = [-1e30, -2, -1, 0.5, 1, 2, 3, 1e30, -0.25];
    const flat = compileNetwork(randomNetwork([linear(7, 2)], 1), undefined, [7]);
    const image = compileNetwork(randomNetwork([conv(3, 2)], 1), undefined, [3, 3, 3]);
    const cases = [
      {
        plan: flat,
        channels: 7,
        lower: [-1, -1, -1, -1, -1, -1, 0],
        upper: [2, 2, 2, 2, 2, 2, 0],
        finite: [false, true, true, false, true, true, true],
      },
      {
        plan: image,
        channels: 3,
        lower: [-1, 0.75, -1],
        upper: [2, 0.75, 2],
        finite: [false, false, true],
      },
    ];
    for (const { plan, channels, lower, upper, finite } of cases) {
      const rows = 5;
      const x = Float32Array.from({ length: rows * plan.inputWidth }, (_, i) =>
        i === 0
          ? Number.NaN
          : i === 10
            ? Number.POSITIVE_INFINITY
            : values[(i * 7) % values.length]!,
      );
      const clip = { lower: Float32Array.from(lower), upper: Float32Array.from(upper) };
      const expected = clippedSums(x, rows, clip);
      for (const executor of executors(plan, 8)) {
        const probe = executor.createProbe([
          { step: -1, point: 'output', channels },
          { step: -1, point: 'output', channels, clip },
        ]);
        executor.run(x, rows, probe);
        const sums = probe.sums[1]!;
        expect(sums.count).toBe(expected.count);
        for (let c = 0; c < channels; c++) {
          const what = `${executor.engine} ${channels} channels: channel ${c}`;
          expect(sums.sum[c], what).toBe(expected.sum[c]);
          expect(sums.sumSquares[c], what).toBe(expected.sumSquares[c]);
          // ±1e30 counts as a bound; a channel with NaN or +∞ stays not finite, as exact.
          expect(Number.isFinite(sums.sum[c]!), what).toBe(finite[c]);
          expect(Number.isFinite(probe.sums[0]!.sum[c]!), what).toBe(finite[c]);
          if (finite[c]) expect(Math.abs(sums.sum[c]!)).toBeLessThanOrEqual(2 * 5 * 9);
        }
      }
    }
  });

  it("sums about each channel's shift, per feature and per channel, clipped or not, and reset(shifts) moves it", () => {
    // Values K_c + a dyadic offset: every difference, square and sum is exact, so both executors
    // must give the reference's bits, and a shift applied to the wrong channel shows.
    const offsets = [-1.5, -0.25, 0, 0.5, 0.75, 2, -3];
    const flat = compileNetwork(randomNetwork([linear(7, 2)], 1), undefined, [7]);
    const image = compileNetwork(randomNetwork([conv(3, 2)], 1), undefined, [3, 3, 3]);
    for (const [plan, channels] of [
      [flat, 7],
      [image, 3],
    ] as const) {
      const rows = 6;
      const width = plan.inputWidth;
      const spatial = width / channels;
      const shiftsOf = (base: number) =>
        Float64Array.from({ length: channels }, (_, c) => base * 2 ** c);
      const rowsAbout = (k: Float64Array) =>
        Float32Array.from({ length: rows * width }, (_, i) => {
          const c = Math.floor((i % width) / spatial);
          return k[c]! + offsets[(i * 5) % offsets.length]!;
        });
      const clip = {
        lower: Float32Array.from({ length: channels }, () => -1e30),
        upper: Float32Array.from({ length: channels }, () => 1e30),
      };
      for (const executor of executors(plan, 8)) {
        const k1 = shiftsOf(1024);
        const probe = executor.createProbe([
          { step: -1, point: 'output', channels, shift: k1 },
          { step: -1, point: 'output', channels, clip, shift: k1 },
        ]);
        for (const k of [k1, shiftsOf(65536)]) {
          if (k !== k1) probe.reset([k, k]);
          const x = rowsAbout(k);
          executor.run(x, rows, probe);
          const expected = directSums(
            Float32Array.from(x, (v, i) => v - k[Math.floor((i % width) / spatial)]!),
            rows,
            channels,
          );
          for (const sums of probe.sums) {
            const what = `${executor.engine} ${channels} channels, K ${k[0]}`;
            expect([...sums.shift], what).toEqual([...k]);
            expect([...sums.sum], what).toEqual([...expected.sum]);
            expect([...sums.sumSquares], what).toEqual([...expected.sumSquares]);
            const { mean } = sums.moments();
            for (let c = 0; c < channels; c++)
              expect(mean[c], what).toBe(k[c]! + expected.sum[c]! / expected.count);
          }
        }
        executor.close();
      }
    }
  });

  it('batchNormClip: bounds in the tapped units (swapped for a negative scale), none where the map cannot say', () => {
    const input = {
      path: '1',
      channels: 4,
      tap: { step: 0, point: 'pre_activation' as const, channels: 4 },
      // x = y·scale + shift
      scale: Float64Array.from([2, -0.5, 0, 1]),
      shift: Float64Array.from([1, 3, 0, 0]),
    };
    const running = {
      mean: [5, -1, 0, 0],
      variance: [3.99999, 15.99999, 1, Number.NaN],
      eps: 1e-5,
    };
    const { lower, upper } = batchNormClip(input, running, 16);
    // Channel 0: x ∈ 5 ± 16·2 = [−27, 37] → y = (x − 1)/2 ∈ [−14, 18].
    // Channel 1: x ∈ −1 ± 16·4 = [−65, 63] → y = (x − 3)/(−0.5) ∈ [−120, 136], swapped.
    // Channel 2: a zero scale; channel 3: no running variance: unclipped.
    expect([...lower]).toEqual([-14, -120, Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
    expect([...upper]).toEqual([18, 136, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY]);
    const plain = batchNormClip({ ...input, scale: undefined, shift: undefined }, running, 2);
    expect(plain.lower[0]).toBe(1);
    expect(plain.upper[0]).toBe(9);
  });

  it('refuses taps that do not fit the plan, and probes of another executor', () => {
    const plan = compileNetwork(randomNetwork(CNN, 1), undefined, [2, 6, 6]);
    const executor = new PlanExecutor(plan, 8);
    const last = plan.steps.length - 1;
    expect(() => executor.createProbe([{ step: last + 1, point: 'output', channels: 4 }])).toThrow(
      /no such step/,
    );
    expect(() =>
      executor.createProbe([{ step: -1, point: 'pre_activation', channels: 2 }]),
    ).toThrow(/no activation/);
    expect(() => executor.createProbe([{ step: 0, point: 'output', channels: 5 }])).toThrow(
      /do not divide/,
    );
    // Step 0 is a conv with 6 channels of 6×6: per value is finer than its channels.
    expect(() => executor.createProbe([{ step: 0, point: 'output', channels: 216 }])).toThrow(
      /finer/,
    );
    expect(() =>
      executor.createProbe([
        {
          step: 0,
          point: 'output',
          channels: 6,
          clip: { lower: new Float32Array(6).fill(1), upper: new Float32Array(6) },
        },
      ]),
    ).toThrow(/lower ≤ upper/);
    expect(() =>
      executor.createProbe([
        {
          step: 0,
          point: 'output',
          channels: 6,
          clip: { lower: new Float32Array(5), upper: new Float32Array(6) },
        },
      ]),
    ).toThrow(/6 lower and upper bounds/);
    // Taps of the same tensor and reading share their sums (two BatchNorms folded into one step).
    const shared = executor.createProbe([
      { step: 0, point: 'output', channels: 6 },
      { step: 0, point: 'output', channels: 6 },
    ]);
    expect(shared.sums[0]).toBe(shared.sums[1]);
    // In other channels (two BatchNorm1d of one tensor flattened two ways), each has its own.
    const coarser = executor.createProbe([
      { step: 0, point: 'output', channels: 6 },
      { step: 0, point: 'output', channels: 3 },
    ]);
    expect(coarser.sums[0]).not.toBe(coarser.sums[1]);
    expect(coarser.sums.map((s) => s.channels)).toEqual([6, 3]);
    const other = new PlanExecutor(plan, 8).createProbe([
      { step: 0, point: 'output', channels: 6 },
    ]);
    expect(() => executor.accumulate(rowsOf(1, 72, 1), 1, other)).toThrow(/another executor/);
  });

  it("a prefix plan's output is the BatchNorm's input; γ = 0 is not observable folded", () => {
    const network = randomNetwork(MLP, 6);
    const prefix = compileNetwork(network, undefined, [12], { until: '7' });
    expect(prefix.batchNormInputs.at(-1)).toMatchObject({
      path: '7',
      channels: 16,
      tap: { step: prefix.steps.length - 1, point: 'output', channels: 16 },
      scale: undefined,
    });
    expect(() => compileNetwork(network, undefined, [12], { until: '99' })).toThrow(/no layer 99/);
    const bn = namedModules(network).find(([p]) => p === '2')![1] as BatchNorm;
    bn.weight!.value.data[3] = 0;
    const plan = compileNetwork(network, undefined, [12]);
    const input = plan.batchNormInputs.find((b) => b.path === '2')!;
    expect(input.tap).toBeUndefined();
    expect(input.reason).toMatch(/zero scale/);
    expect(() => batchNormInputsOf(plan, ['2'])).toThrow(/cannot be read/);
  });

  it('the plan keeps the views a BatchNorm reads a tensor in, and no other', () => {
    const read = compileNetwork(randomNetwork(CONV_FLATTEN_BN, 1), undefined, [1, 4, 4]);
    expect(read.views).toEqual([{ tensor: 1, shape: [8] }]);
    expect(tensorChannels(read)).toEqual([1, 8, 3]);
    // CNN's Flatten feeds a Linear: no tap reads it per feature, so none is sized for it.
    const plan = compileNetwork(randomNetwork(CNN, 1), undefined, [2, 6, 6]);
    expect(plan.views).toEqual([]);
  });

  it('a BatchNorm1d after Flatten folds into the conv when uniform per conv channel, composed after the BatchNorm2d folded there', () => {
    // conv [2, 2, 2] → BN2d(2) → flatten → BN1d(8): features 0–3 are conv channel 0's values,
    // 4–7 channel 1's; the BN1d's numbers are one per conv channel (each channel its own), so it
    // folds into the conv's rows after the BN2d, and the BN2d's input is read through both.
    const network = randomNetwork(
      [conv(1, 2, { padding: 0 }), bn2d(2), spec({ type: 'flatten' }), bn1d(8), linear(8, 3)],
      12,
    );
    const bn1 = namedModules(network).find(([p]) => p === '3')![1] as BatchNorm;
    for (const t of [bn1.runningMean, bn1.runningVar, bn1.weight!.value, bn1.bias!.value])
      for (let k = 0; k < 8; k++) t.data[k] = t.data[k < 4 ? 0 : 4]!;
    const plan = compileNetwork(network, undefined, [1, 4, 4]);
    expect(plan.layers.filter((l) => l.path !== '0').map((l) => [l.path, l.fate])).toEqual([
      ['1', 'folded_into_previous_conv'],
      ['2', 'reshape'],
      ['3', 'folded_into_previous_conv'],
      ['4', 'kernel'],
    ]);
    const inputs = batchNormInputsOf(plan);
    expect(inputs.map((b) => b.tap)).toEqual([
      { step: 0, point: 'pre_activation', channels: 2 },
      { step: 0, point: 'pre_activation', channels: 8 },
    ]);
    const rows = 64;
    const x = rowsOf(rows, 16, 3);
    const hooked = hookedInputSums(network, undefined, [1, 4, 4], x, rows).sums;
    for (const executor of executors(plan, rows)) {
      const probe = executor.createProbe(batchNormTaps(inputs));
      executor.run(x, rows, probe);
      inputs.forEach((b, i) => {
        const got = batchNormMoments(b, probe.sums[i]!);
        const reference = hooked.get(b.path)!.moments();
        expect(got.count).toBe(reference.count);
        for (let ch = 0; ch < b.channels; ch++) {
          const sigma = Math.sqrt(reference.m2[ch]! / reference.count);
          expect(
            Math.abs(got.mean[ch]! - reference.mean[ch]!) / sigma,
            `${executor.engine} ${b.path} mean[${ch}]`,
          ).toBeLessThan(STATS_RTOL);
          expect(
            Math.abs(got.m2[ch]! / reference.m2[ch]! - 1),
            `${executor.engine} ${b.path} M2[${ch}]`,
          ).toBeLessThan(STATS_RTOL);
        }
      });
    }
  });
});

describe('ChannelSums.shiftTooFar threshold', () => {
  // shiftTooFar's comment: the bound 3·n·u·Σ(x − K)² (u = 2^−53) exceeds M2_RELATIVE_TOLERANCE · M2
  // when (mean − K)²/variance > M2_RELATIVE_TOLERANCE/(3·n·u) − 1, since Σ(x − K)² = M2 + n·(mean − K)².
  const limit = (n: number): number => M2_RELATIVE_TOLERANCE / (3 * n * 2 ** -53) - 1;
  /** Sums of n values of variance 1 (M2 = n) whose mean is `ratio ** 0.5` above K = 0. */
  const sumsAt = (n: number, ratio: number): ChannelSums => {
    const s = new ChannelSums(1);
    const d = Math.sqrt(ratio);
    s.count = n;
    s.sum[0] = n * d;
    s.sumSquares[0] = n + n * d * d;
    return s;
  };
  // 1 % either side of the threshold: far beyond the float64 rounding of the sums set above.
  const THRESHOLD_MARGIN = 0.01;

  it.each([
    [4096, 43_690],
    [4096 * 28 * 28, 54.7],
  ])('n = %i: the second pass starts above (mean − K)²/variance ≈ %s', (n, quoted) => {
    // The numbers quoted in the comment and src/inference/README.md, to their digits.
    expect(limit(n)).toBeCloseTo(quoted, quoted > 1000 ? -1 : 1);
    expect(sumsAt(n, limit(n) * (1 - THRESHOLD_MARGIN)).shiftTooFar()).toBe(false);
    expect(sumsAt(n, limit(n) * (1 + THRESHOLD_MARGIN)).shiftTooFar()).toBe(true);
  });
});
