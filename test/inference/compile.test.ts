/**
 * Eval-mode compilation: the fused plan (BatchNorm and input transform folded into Linear
 * weights, dropout removed, activations in the kernels) computes what the unfused eval path
 * computes, row by row, for every layer combination.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec } from '../../src/checkpoint/index.js';
import { CompiledModel, compileNetwork, PlanExecutor } from '../../src/inference/index.js';
import { BatchNorm, type FeatureTransform, Rng, type Sequential } from '../../src/nn/index.js';
import { loadModelDirectory } from '../../src/repository/index.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { BATCH_INDEPENDENCE_ATOL, FUSION_ATOL } from '../helpers/tolerances.js';

const linear = (i: number, o: number, bias = true): LayerSpec => ({
  type: 'linear',
  in_features: i,
  out_features: o,
  bias,
});
const bn = (n: number, affine = true): LayerSpec => ({
  type: 'batchnorm1d',
  num_features: n,
  eps: 1e-5,
  momentum: 0.1,
  affine,
  track_running_stats: true,
});
const ln = (n: number): LayerSpec => ({
  type: 'layernorm',
  normalized_shape: [n],
  eps: 1e-5,
  elementwise_affine: true,
});
const relu: LayerSpec = { type: 'relu' };
const dropout: LayerSpec = { type: 'dropout', p: 0.3 };

/** A network with random weights, BatchNorm affine parameters and running statistics. */
function randomNetwork(layers: LayerSpec[], seed: number): Sequential {
  const rng = new Rng(seed);
  const network = buildSequential(layers, { init: rng, dropout: rng });
  for (const m of network.modules) {
    if (m instanceof BatchNorm) {
      for (let k = 0; k < m.numFeatures; k++) {
        m.runningMean.data[k] = rng.normal();
        m.runningVar.data[k] = 0.2 + 2 * rng.next();
        if (m.weight && m.bias) {
          m.weight.value.data[k] = 0.5 + rng.next();
          m.bias.value.data[k] = rng.normal() * 0.3;
        }
      }
      m.numBatchesTracked = 17;
    }
  }
  return network.eval();
}

function randomInput(rows: number, width: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * width }, () => rng.normal() * 3);
}

const transform = (width: number, seed: number): FeatureTransform => {
  const rng = new Rng(seed);
  return {
    shift: Array.from({ length: width }, () => rng.normal()),
    scale: Array.from({ length: width }, () => 0.5 + rng.next()),
  };
};

/** A compiled model on the suite's engine (wasm; js in the js-engine project). */
const compiled = (
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  maxBatchSize: number,
): CompiledModel =>
  new CompiledModel(network, inputTransform, maxBatchSize, undefined, { engine: TEST_ENGINE });

/** Every arrangement the compiler treats differently. */
const combinations: Record<string, LayerSpec[]> = {
  'Linear → BN → ReLU → Dropout → Linear (BN into the previous rows)': [
    linear(6, 8),
    bn(8),
    relu,
    dropout,
    linear(8, 3),
  ],
  'BN first, then Linear (BN into the next columns)': [bn(6), linear(6, 5), relu, linear(5, 2)],
  'Linear → ReLU → BN → Linear (BN after the activation, into the next columns)': [
    linear(6, 7),
    relu,
    bn(7),
    linear(7, 3),
  ],
  'two BNs in a row between Linears': [linear(6, 5), relu, bn(5), bn(5), linear(5, 4)],
  'BN without affine parameters': [linear(6, 5), bn(5, false), relu, linear(5, 3)],
  'Linear without bias, then BN': [linear(6, 5, false), bn(5), relu, linear(5, 3)],
  'BN at the end (stand-alone affine kernel)': [linear(6, 5), relu, linear(5, 4), relu, bn(4)],
  'BN before LayerNorm (no Linear to fold into)': [linear(6, 5), relu, bn(5), ln(5), linear(5, 3)],
  'LayerNorm block with GELU': [
    linear(6, 8),
    ln(8),
    { type: 'gelu', approximate: 'none' },
    linear(8, 3),
  ],
  'SELU + AlphaDropout': [
    linear(6, 8),
    { type: 'selu' },
    { type: 'alpha_dropout', p: 0.1 },
    linear(8, 3),
  ],
  'every activation': [
    linear(6, 6),
    bn(6),
    { type: 'leaky_relu', negative_slope: 0.2 },
    linear(6, 6),
    { type: 'tanh' },
    linear(6, 6),
    { type: 'sigmoid' },
    linear(6, 6),
    { type: 'gelu', approximate: 'tanh' },
    { type: 'identity' },
    linear(6, 2),
  ],
  'activation first (stand-alone activation kernel)': [
    relu,
    linear(6, 4),
    bn(4),
    relu,
    linear(4, 2),
  ],
};

describe('fused vs unfused eval', () => {
  for (const [name, layers] of Object.entries(combinations)) {
    for (const withTransform of [false, true]) {
      it(`${name}${withTransform ? ', with an input transform' : ''}: max |Δ| ≤ ${FUSION_ATOL}`, () => {
        const network = randomNetwork(layers, 11);
        const model = compiled(network, withTransform ? transform(6, 3) : undefined, 64);
        const x = randomInput(64, 6, 5);
        expectClose(model.forward(x, 64, true), model.forward(x, 64, false), FUSION_ATOL, name);
      });
    }
  }

  it('folds the bundled model to three dense kernels and matches its unfused path within 1e-4', async () => {
    const { checkpoint } = await loadModelDirectory('models/digits/1');
    const model = compiled(checkpoint.network, checkpoint.config.input_transform, 4096);
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
    );
    expect(plan.layers[0]).toEqual({
      index: 0,
      kind: 'BatchNorm1d',
      fate: 'folded_into_next_linear',
    });
    const end = compileNetwork(
      randomNetwork(combinations['BN at the end (stand-alone affine kernel)']!, 1),
    );
    expect(end.layers.at(-1)).toEqual({ index: 4, kind: 'BatchNorm1d', fate: 'standalone_affine' });
  });
});

describe('eval never uses batch statistics', () => {
  const layers = combinations['Linear → BN → ReLU → Dropout → Linear (BN into the previous rows)']!;

  it(`each row of a 64-row batch equals the same row predicted alone (≤ ${BATCH_INDEPENDENCE_ATOL})`, () => {
    const model = compiled(randomNetwork(layers, 2), transform(6, 4), 64);
    const x = randomInput(64, 6, 9);
    const batch = model.forward(x, 64, true);
    for (let r = 0; r < 64; r++) {
      const alone = model.forward(x.slice(r * 6, (r + 1) * 6), 1, true);
      expectClose(batch.subarray(r * 3, (r + 1) * 3), alone, BATCH_INDEPENDENCE_ATOL, `row ${r}`);
    }
  });

  it('a batch of one row works, fused and unfused', () => {
    const model = compiled(randomNetwork(layers, 2), undefined, 64);
    const x = randomInput(1, 6, 1);
    const fused = model.forward(x, 1, true);
    expect(fused).toHaveLength(3);
    expect([...fused].every(Number.isFinite)).toBe(true);
    expectClose(fused, model.forward(x, 1, false), FUSION_ATOL, 'one row');
  });

  it('identical rows (zero batch variance) give the running-statistics output, not NaN', () => {
    const network = randomNetwork([linear(4, 3), bn(3)], 6);
    const model = compiled(network, undefined, 8);
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
    const model = compiled(network, undefined, 64);
    model.forward(randomInput(64, 6, 2), 64, true);
    model.forward(randomInput(64, 6, 2), 64, false);
    for (const [k, v] of network.stateDict()) {
      const old = snapshot.get(k)!;
      if (typeof v === 'bigint') expect(v, k).toBe(old);
      else expect(Array.from(v.data), k).toEqual(Array.from(old as Float32Array));
    }
  });

  it('the JavaScript executor reuses its buffers: the same batch size class allocates nothing new', () => {
    const model = new PlanExecutor(compileNetwork(randomNetwork(layers, 4)), 256);
    const first = model.inputBuffer(100);
    expect(model.inputBuffer(128)).toSatisfy((b: Float32Array) => b.buffer === first.buffer);
    expect(model.inputBuffer(65).buffer).toBe(first.buffer);
    expect(model.inputBuffer(64).buffer).not.toBe(first.buffer);
  });
});
