/**
 * centredPlan (src/inference/centred-plan.ts): the statistics plan whose first Linear works on
 * inputs centred at c computes the same function as the plan it came from, and the BatchNorm
 * inputs it records read the same values; with the float32 GEMM, the statistics of inputs far
 * from 0 (a night-shifted image) come out as accurate as the float64-accumulating GEMM's.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';
import {
  batchNormInputsOf,
  batchNormMoments,
  batchNormTaps,
  type CompiledPlan,
  centredPlan,
  compileNetwork,
  createExecutor,
  detectWasmSupport,
  inputTransformStep,
  PlanExecutor,
} from '../../src/inference/index.js';
import { BatchNorm, namedModules, Rng, type Sequential } from '../../src/nn/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';

prepareWasmRuntime();
const wasm = detectWasmSupport().simd;

const spec = (value: unknown): LayerSpec => layerSchema.parse(value);
const LAYERS: LayerSpec[] = [
  spec({ type: 'linear', in_features: 13, out_features: 21 }),
  spec({ type: 'batchnorm1d', num_features: 21 }),
  spec({ type: 'relu' }),
  spec({ type: 'linear', in_features: 21, out_features: 10 }),
  spec({ type: 'batchnorm1d', num_features: 10 }),
];

function network(seed: number): Sequential {
  const rng = new Rng(seed);
  const net = buildSequential(LAYERS, { init: rng, dropout: rng });
  for (const [, m] of namedModules(net)) {
    if (!(m instanceof BatchNorm)) continue;
    for (let k = 0; k < m.numFeatures; k++) {
      m.runningMean.data[k] = rng.normal();
      m.runningVar.data[k] = 0.1 + rng.next();
    }
  }
  return net.eval();
}

const transform = {
  shift: Float32Array.from({ length: 13 }, (_, i) => i * 0.37 - 2),
  scale: Float32Array.from({ length: 13 }, (_, i) => 0.3 + i * 0.11),
};

/**
 * Rows far from the transform's centre, like night-shifted pixels: z = 40 + one of 17 levels
 * in [0, 2] after the transform (a strong domain shift on discrete inputs).
 */
function shiftedRows(rows: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from(
    { length: rows * 13 },
    (_, i) =>
      transform.shift[i % 13]! + (40 + Math.floor(rng.next() * 17) / 8) / transform.scale[i % 13]!,
  );
}

/**
 * The centre of raw rows for centredPlan: the per-feature mean of what the plan's input transform
 * makes of them (recalibration measures the same on its transformedInputTap).
 */
function inputCentre(plan: CompiledPlan, rows: Float32Array, count: number): Float64Array {
  const width = plan.inputWidth;
  const centre = new Float64Array(width);
  for (let r = 0; r < count; r++)
    for (let i = 0; i < width; i++) centre[i] = centre[i]! + rows[r * width + i]!;
  const affine = inputTransformStep(plan);
  for (let i = 0; i < width; i++) {
    const mean = centre[i]! / count;
    centre[i] = affine ? mean * affine.scale[i]! + affine.shift[i]! : mean;
  }
  return centre;
}

/** Mean and unbiased variance of BatchNorm `path`'s input through `plan` on `executor`. */
function statistics(
  plan: ReturnType<typeof compileNetwork>,
  path: string,
  x: Float32Array,
  rows: number,
  make: (p: typeof plan) => ReturnType<typeof createExecutor>,
) {
  const [input] = batchNormInputsOf(plan, [path]);
  const executor = make(plan);
  const probe = executor.createProbe(batchNormTaps([input!]));
  executor.accumulate(x, rows, probe);
  executor.close();
  const { count, mean, m2 } = batchNormMoments(input!, probe.sums[0]!);
  return { mean, variance: m2.map((v) => v / (count - 1)) };
}

const worstRelative = (a: Float64Array, b: Float64Array) =>
  Math.max(...a.map((v, i) => Math.abs(v - b[i]!) / Math.abs(b[i]!)));

describe('centred statistics plans', () => {
  it('compute the same function and read the same BatchNorm inputs (float64 JS executor)', () => {
    const net = network(1);
    const rows = 50;
    const x = shiftedRows(rows, 2);
    for (const until of ['1', '4']) {
      const plan = compileNetwork(net, transform, [13], { until, foldBatchNorms: false });
      const centre = inputCentre(plan, x, rows);
      const centred = centredPlan(plan, centre);
      expect(centred).toBeDefined();
      expect(centred!.steps.map((s) => s.op)).toEqual(plan.steps.map((s) => s.op));
      // The first Linear has no bias left: W·c + b moved to float64 after it.
      expect(Array.from((centred!.steps[1] as { bias: Float32Array }).bias)).toEqual(
        new Array(21).fill(0),
      );
      const js = (p: typeof plan) => new PlanExecutor(p, rows);
      const a = statistics(plan, until, x, rows, js);
      const b = statistics(centred!, until, x, rows, js);
      // Float32 rounding of the intermediate values differs (the point of it), nothing else.
      expect(worstRelative(b.mean, a.mean)).toBeLessThan(1e-5);
      expect(worstRelative(b.variance, a.variance)).toBeLessThan(1e-4);
    }
  });

  it('declines plans it cannot centre (a convolution or an activation after the first Linear)', () => {
    const net = buildSequential(
      [
        spec({ type: 'linear', in_features: 13, out_features: 5 }),
        spec({ type: 'relu' }),
        spec({ type: 'batchnorm1d', num_features: 5 }),
      ],
      { init: new Rng(3), dropout: new Rng(3) },
    ).eval();
    const plan = compileNetwork(net, transform, [13], { until: '2', foldBatchNorms: false });
    expect(centredPlan(plan, new Float64Array(13))).toBeUndefined();
    expect(centredPlan(plan, new Float64Array(12))).toBeUndefined();
  });

  it.skipIf(!wasm)(
    "on the float32 GEMM, shifted inputs' variance is as accurate as the float64 GEMM's",
    () => {
      const net = network(4);
      const rows = 4000;
      const x = shiftedRows(rows, 5);
      const plan = compileNetwork(net, transform, [13], { until: '1', foldBatchNorms: false });
      const engine = (denseAccumulation: 'float32' | 'float64') => (p: typeof plan) =>
        createExecutor(p, {
          ...nodeEngineOptions({ threads: 1 }),
          maxBatchSize: 1024,
          denseAccumulation,
        });
      const exact = statistics(plan, '1', x, rows, engine('float64'));
      const plain = statistics(plan, '1', x, rows, engine('float32'));
      const centred = statistics(
        centredPlan(plan, inputCentre(plan, x, rows))!,
        '1',
        x,
        rows,
        engine('float32'),
      );
      const plainError = worstRelative(plain.variance, exact.variance);
      const centredError = worstRelative(centred.variance, exact.variance);
      // Uncentred, the float32 partial sums are ~40·|w| per term; centred, ~|w|.
      expect(centredError).toBeLessThan(plainError / 4);
      expect(centredError).toBeLessThan(1e-5);
    },
  );
});
