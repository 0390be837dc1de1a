/**
 * Eval-mode compilation: the fused plan (BatchNorm and input transform folded into Linear
 * weights, dropout removed, activations in the kernels) computes what the unfused eval path
 * computes, row by row, for every layer combination.
 */
import { describe, expect, it } from 'vitest';
import { CompiledModel, compileNetwork, PlanExecutor } from '../../src/inference/index.js';
import type { BatchNorm, FeatureTransform, Sequential } from '../../src/nn/index.js';
import { loadModelDirectory } from '../../src/repository/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import {
  bn,
  combinations,
  linear,
  randomInput,
  randomNetwork,
  transform,
} from '../helpers/layer-combinations.js';
import { BATCH_INDEPENDENCE_ATOL, FUSION_ATOL } from '../helpers/tolerances.js';

/** A compiled model on the suite's engine (wasm; js in the js-engine project). */
const compiled = (
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  maxBatchSize: number,
  inputShape: readonly number[],
): CompiledModel =>
  new CompiledModel(network, inputTransform, maxBatchSize, inputShape, { engine: TEST_ENGINE });

describe('fused vs unfused eval', () => {
  for (const [name, layers] of Object.entries(combinations)) {
    for (const withTransform of [false, true]) {
      it(`${name}${withTransform ? ', with an input transform' : ''}: max |Δ| ≤ ${FUSION_ATOL}`, () => {
        const network = randomNetwork(layers, 11);
        const model = compiled(network, withTransform ? transform(6, 3) : undefined, 64, [6]);
        const x = randomInput(64, 6, 5);
        expectClose(model.forward(x, 64, true), model.forward(x, 64, false), FUSION_ATOL, name);
      });
    }
  }

  it('folds the bundled model to three dense kernels and matches its unfused path within 1e-4', async () => {
    const { checkpoint } = await loadModelDirectory(bundledVersionDir('digits'));
    const model = compiled(
      checkpoint.network,
      checkpoint.config.input_transform,
      4096,
      checkpoint.config.input_shape,
    );
    expect(model.plan.steps.map((s) => `${s.op}:${s.activation.kind}`)).toEqual([
      'dense:relu',
      'dense:relu',
      'dense:none',
    ]);
    expect(model.plan.inputTransformFolded).toBe(true);
    expect(
      model.plan.layers.filter((l) => l.fate === 'folded_into_previous_linear').map((l) => l.index),
    ).toEqual([1, 5]);
    expect(
      model.plan.layers.filter((l) => l.fate === 'removed_in_eval').map((l) => l.index),
    ).toEqual([3, 7]);
    const { x } = digitsTestRows();
    const input = Float32Array.from(x.flat());
    expectClose(
      model.forward(input, x.length, true),
      model.forward(input, x.length, false),
      FUSION_ATOL,
      'digits',
    );
  });

  it('reports where each BatchNorm went', () => {
    const plan = compileNetwork(
      randomNetwork(combinations['BN first, then Linear (BN into the next columns)']!, 1),
      undefined,
      [6],
    );
    expect(plan.layers[0]).toEqual({
      index: 0,
      path: '0',
      kind: 'BatchNorm1d',
      fate: 'folded_into_next_linear',
    });
    const end = compileNetwork(
      randomNetwork(combinations['BN at the end (stand-alone affine kernel)']!, 1),
      undefined,
      [6],
    );
    expect(end.layers.at(-1)).toEqual({
      index: 4,
      path: '4',
      kind: 'BatchNorm1d',
      fate: 'standalone_affine',
    });
  });
});

describe('eval never uses batch statistics', () => {
  const layers = combinations['Linear → BN → ReLU → Dropout → Linear (BN into the previous rows)']!;

  it(`each row of a 64-row batch equals the same row predicted alone (≤ ${BATCH_INDEPENDENCE_ATOL})`, () => {
    const model = compiled(randomNetwork(layers, 2), transform(6, 4), 64, [6]);
    const x = randomInput(64, 6, 9);
    const batch = model.forward(x, 64, true);
    for (let r = 0; r < 64; r++) {
      const alone = model.forward(x.slice(r * 6, (r + 1) * 6), 1, true);
      expectClose(batch.subarray(r * 3, (r + 1) * 3), alone, BATCH_INDEPENDENCE_ATOL, `row ${r}`);
    }
  });

  it('a batch of one row works, fused and unfused', () => {
    const model = compiled(randomNetwork(layers, 2), undefined, 64, [6]);
    const x = randomInput(1, 6, 1);
    const fused = model.forward(x, 1, true);
    expect(fused).toHaveLength(3);
    expect([...fused].every(Number.isFinite)).toBe(true);
    expectClose(fused, model.forward(x, 1, false), FUSION_ATOL, 'one row');
  });

  it('identical rows (zero batch variance) give the running-statistics output, not NaN', () => {
    const network = randomNetwork([linear(4, 3), bn(3)], 6);
    const model = compiled(network, undefined, 8, [4]);
    const row = [0.5, -1, 2, 0.25];
    const x = Float32Array.from([...row, ...row, ...row, ...row]);
    const out = model.forward(x, 4, true);
    const bnLayer = network.modules[1] as BatchNorm;
    const lin = network.modules[0]!.stateDict();
    const w = (lin.get('weight') as { data: Float32Array }).data;
    const b = (lin.get('bias') as { data: Float32Array }).data;
    const expected = [0, 1, 2].map((o) => {
      const h = b[o]! + row.reduce((acc, v, i) => acc + v * w[o * 4 + i]!, 0);
      const s =
        bnLayer.weight!.value.data[o]! / Math.sqrt(bnLayer.runningVar.data[o]! + bnLayer.eps);
      return (h - bnLayer.runningMean.data[o]!) * s + bnLayer.bias!.value.data[o]!;
    });
    for (let r = 0; r < 4; r++)
      expectClose(out.subarray(r * 3, r * 3 + 3), expected, FUSION_ATOL, `row ${r}`);
  });

  it('leaves the running statistics and num_batches_tracked untouched', () => {
    const network = randomNetwork(layers, 3);
    const before = network.stateDict();
    const snapshot = new Map(
      [...before].map(([k, v]) => [k, typeof v === 'bigint' ? v : v.data.slice()]),
    );
    const model = compiled(network, undefined, 64, [6]);
    model.forward(randomInput(64, 6, 2), 64, true);
    model.forward(randomInput(64, 6, 2), 64, false);
    for (const [k, v] of network.stateDict()) {
      const old = snapshot.get(k)!;
      if (typeof v === 'bigint') expect(v, k).toBe(old);
      else expect(Array.from(v.data), k).toEqual(Array.from(old as Float32Array));
    }
  });

  it('the JavaScript executor reuses its buffers: the same batch size class allocates nothing new', () => {
    const model = new PlanExecutor(compileNetwork(randomNetwork(layers, 4), undefined, [6]), 256);
    const first = model.inputBuffer(100);
    expect(model.inputBuffer(128)).toSatisfy((b: Float32Array) => b.buffer === first.buffer);
    expect(model.inputBuffer(65).buffer).toBe(first.buffer);
    expect(model.inputBuffer(64).buffer).not.toBe(first.buffer);
  });
});
