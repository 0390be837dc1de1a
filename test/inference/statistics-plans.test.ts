/**
 * What recalibration's statistics plans rely on beyond the probe: compileNetwork's
 * foldBatchNorms: false (every BatchNorm and the input transform as their own float64 affine
 * steps), the wasm engine's float64-accumulating dense steps (gemm64) agreeing with the
 * JavaScript executor's float64 sums, and affine steps computed in float64 on both engines.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';
import {
  compileNetwork,
  createExecutor,
  detectWasmSupport,
  PlanExecutor,
} from '../../src/inference/index.js';
import {
  applyFeatureTransform,
  BatchNorm,
  namedModules,
  Rng,
  type Sequential,
  Tensor,
} from '../../src/nn/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';
import { maxAbsDiff } from '../helpers/compare.js';
import { FUSION_ATOL } from '../helpers/tolerances.js';

prepareWasmRuntime();
const wasm = detectWasmSupport().simd;

/**
 * The same float64 sums added in another order (gemm64 starts from the bias, the JS kernel adds
 * it last), each rounded once to float32: an ulp apart at most per layer, and the network has
 * three dense layers; relative to the largest output (a value near 0 after a cancellation has
 * no relative accuracy in either).
 */
const FEW_ULPS_RTOL = 4 * 2 ** -23;

const spec = (value: unknown): LayerSpec => layerSchema.parse(value);
const LAYERS: LayerSpec[] = [
  spec({ type: 'linear', in_features: 13, out_features: 21 }),
  spec({ type: 'batchnorm1d', num_features: 21 }),
  spec({ type: 'relu' }),
  spec({ type: 'linear', in_features: 21, out_features: 10 }),
  spec({ type: 'batchnorm1d', num_features: 10 }),
  spec({ type: 'leaky_relu', negative_slope: 0.1 }),
  spec({ type: 'linear', in_features: 10, out_features: 3 }),
];

function randomNetwork(seed: number): Sequential {
  const rng = new Rng(seed);
  const network = buildSequential(LAYERS, { init: rng, dropout: rng });
  for (const [, m] of namedModules(network)) {
    if (!(m instanceof BatchNorm)) continue;
    for (let k = 0; k < m.numFeatures; k++) {
      m.runningMean.data[k] = rng.normal();
      m.runningVar.data[k] = 0.1 + rng.next();
      m.weight!.value.data[k] = 0.5 + rng.next();
      m.bias!.value.data[k] = rng.normal();
    }
  }
  return network.eval();
}

const transform = {
  shift: Float32Array.from({ length: 13 }, (_, i) => i * 0.37 - 2),
  scale: Float32Array.from({ length: 13 }, (_, i) => 0.3 + i * 0.11),
};

function rowsOf(rows: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * 13 }, () => rng.normal() * 3 + 1);
}

/** |actual − expected| within a few ulps of the output's largest magnitude, value by value. */
function expectUlpClose(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  const scale = Math.max(...expected.map(Math.abs));
  expect(maxAbsDiff(actual, expected) / scale).toBeLessThanOrEqual(FEW_ULPS_RTOL);
}

describe('statistics plans', () => {
  it('foldBatchNorms: false keeps every BatchNorm and the input transform as affine steps', () => {
    const network = randomNetwork(1);
    const plan = compileNetwork(network, transform, [13], { foldBatchNorms: false });
    expect(plan.steps.map((s) => s.op)).toEqual([
      'affine',
      'dense',
      'affine',
      'dense',
      'affine',
      'dense',
    ]);
    expect(plan.inputTransformFolded).toBe(false);
    expect(plan.layers.filter((l) => l.kind === 'BatchNorm1d').map((l) => l.fate)).toEqual([
      'standalone_affine',
      'standalone_affine',
    ]);
    // Each BatchNorm's input is the output of the dense step before it, as it is.
    expect(plan.batchNormInputs.map((b) => [b.tap?.step, b.tap?.point, b.scale])).toEqual([
      [1, 'output', undefined],
      [3, 'output', undefined],
    ]);
    // The same function as the folded plan and the nn layers.
    const rows = 37;
    const x = rowsOf(rows, 2);
    const unfolded = new PlanExecutor(plan, rows).run(x, rows);
    const folded = new PlanExecutor(compileNetwork(network, transform, [13]), rows).run(x, rows);
    const reference = network.forward(
      new Tensor(applyFeatureTransform(x, 13, transform), [rows, 13]),
    ).data;
    expect(maxAbsDiff(unfolded, reference)).toBeLessThanOrEqual(FUSION_ATOL);
    expect(maxAbsDiff(unfolded, folded)).toBeLessThanOrEqual(FUSION_ATOL);
  });

  it.skipIf(!wasm)(
    "the wasm engine's float64 dense steps and affine steps agree with the JS executor to an ulp",
    () => {
      const network = randomNetwork(3);
      const plan = compileNetwork(network, transform, [13], { foldBatchNorms: false });
      // Odd row counts and widths that are not multiples of 8: gemm64's last row and columns.
      for (const rows of [1, 2, 7, 64, 301]) {
        const x = rowsOf(rows, 10 + rows);
        const js = new PlanExecutor(plan, rows).run(x, rows);
        const engine = createExecutor(plan, {
          ...nodeEngineOptions({ threads: 1 }),
          maxBatchSize: rows,
          denseAccumulation: 'float64',
        });
        expect(engine.engine).toBe('wasm');
        expectUlpClose(engine.run(x, rows), js);
        engine.close();
      }
    },
  );
});
