/**
 * Eval-mode compilation of convolutional networks: Conv2d + BatchNorm2d folded as PyTorch's
 * fuse_conv_bn_eval (also inside residual blocks), ReLU fused, pooling, Flatten, LayerNorm over
 * [C, H, W], the input transform folded into the first Conv2d where exact — fused vs unfused on
 * every arrangement the compiler treats differently, rows independent.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';
import { CompiledModel } from '../../src/inference/index.js';
import {
  BatchNorm,
  type FeatureTransform,
  namedModules,
  Rng,
  type Sequential,
} from '../../src/nn/index.js';
import { expectClose } from '../helpers/compare.js';
import { BATCH_INDEPENDENCE_ATOL, FUSION_ATOL } from '../helpers/tolerances.js';

const spec = (value: unknown): LayerSpec => layerSchema.parse(value);
const conv = (i: number, o: number, extra: Record<string, unknown> = {}) =>
  spec({ type: 'conv2d', in_channels: i, out_channels: o, kernel_size: 3, padding: 1, ...extra });
const bn2d = (c: number) => spec({ type: 'batchnorm2d', num_features: c });
const relu = spec({ type: 'relu' });

/** The CNN: conv-bn-relu, a residual block, maxpool, conv-bn-relu, global pool, linear. */
const digitsCnn: LayerSpec[] = [
  conv(1, 16),
  bn2d(16),
  relu,
  spec({
    type: 'residual',
    layers: [
      conv(16, 16, { bias: false }),
      bn2d(16),
      relu,
      conv(16, 16, { bias: false }),
      bn2d(16),
    ],
  }),
  spec({ type: 'maxpool2d', kernel_size: 2 }),
  conv(16, 32),
  bn2d(32),
  relu,
  spec({ type: 'adaptive_avgpool2d', output_size: 1 }),
  spec({ type: 'flatten' }),
  spec({ type: 'linear', in_features: 32, out_features: 10 }),
];

/** Random weights, BatchNorm affine parameters and running statistics (nested ones too). */
function randomNetwork(layers: LayerSpec[], seed: number): Sequential {
  const rng = new Rng(seed);
  const network = buildSequential(layers, { init: rng, dropout: rng });
  for (const [, m] of namedModules(network)) {
    if (!(m instanceof BatchNorm)) continue;
    for (let k = 0; k < m.numFeatures; k++) {
      m.runningMean.data[k] = rng.normal() * 0.5;
      m.runningVar.data[k] = 0.2 + 2 * rng.next();
      if (m.weight && m.bias) {
        m.weight.value.data[k] = 0.5 + rng.next();
        m.bias.value.data[k] = rng.normal() * 0.3;
      }
    }
  }
  return network.eval();
}

function randomInput(rows: number, width: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * width }, () => rng.uniform(0, 16));
}

const pixelScale = (width: number): FeatureTransform => ({
  shift: new Array(width).fill(0),
  scale: new Array(width).fill(1 / 16),
});
const standardize = (width: number, seed: number): FeatureTransform => {
  const rng = new Rng(seed);
  return {
    shift: Array.from({ length: width }, () => rng.uniform(0, 8)),
    scale: Array.from({ length: width }, () => 0.1 + rng.next() * 0.3),
  };
};

interface Case {
  layers: LayerSpec[];
  inputShape: number[];
  transform?: FeatureTransform;
}

const cases: Record<string, Case> = {
  "the issue's CNN, pixel/16 folded into the first conv": {
    layers: digitsCnn,
    inputShape: [1, 8, 8],
    transform: pixelScale(64),
  },
  "the issue's CNN, a per-pixel standardization (cannot fold through padding: affine step)": {
    layers: digitsCnn,
    inputShape: [1, 8, 8],
    transform: standardize(64, 3),
  },
  'BatchNorm2d first into an unpadded conv (folds into its columns)': {
    layers: [bn2d(2), conv(2, 3, { padding: 0 }), relu, spec({ type: 'flatten' })],
    inputShape: [2, 5, 5],
  },
  'BatchNorm2d first into a padded conv (stand-alone per-channel affine)': {
    layers: [bn2d(2), conv(2, 3), relu, spec({ type: 'flatten' })],
    inputShape: [2, 5, 5],
  },
  'conv → ReLU → BN2d → avgpool (exclude pad) → flatten → BN1d → linear': {
    layers: [
      conv(2, 4, { stride: 2, dilation: [1, 2], padding: [1, 2] }),
      relu,
      bn2d(4),
      spec({
        type: 'avgpool2d',
        kernel_size: 3,
        stride: 2,
        padding: 1,
        count_include_pad: false,
      }),
      spec({ type: 'flatten' }),
      spec({ type: 'batchnorm1d', num_features: 24 }),
      spec({ type: 'linear', in_features: 24, out_features: 3 }),
    ],
    inputShape: [2, 7, 9],
  },
  'conv → dropout → BN2d (folds through the dropout) → maxpool(3, 2, 1) → global pool': {
    layers: [
      conv(3, 4, { bias: false }),
      spec({ type: 'dropout', p: 0.3 }),
      bn2d(4),
      spec({ type: 'maxpool2d', kernel_size: 3, stride: 2, padding: 1 }),
      relu,
      spec({ type: 'adaptive_avgpool2d', output_size: [2, 1] }),
      spec({ type: 'flatten' }),
    ],
    inputShape: [3, 6, 5],
  },
  'conv → flatten → BN1d over C·H·W (into the conv rows: not per channel, so next linear)': {
    layers: [
      conv(1, 2, { padding: 0 }),
      spec({ type: 'flatten' }),
      spec({ type: 'batchnorm1d', num_features: 18 }),
      spec({ type: 'linear', in_features: 18, out_features: 4 }),
    ],
    inputShape: [1, 5, 5],
  },
  'nested residual blocks, LayerNorm over [C, H, W] and over W': {
    layers: [
      conv(1, 3),
      spec({
        type: 'residual',
        layers: [
          conv(3, 3),
          bn2d(3),
          spec({ type: 'residual', layers: [conv(3, 3), bn2d(3)] }),
          spec({ type: 'layernorm', normalized_shape: [3, 4, 4] }),
        ],
      }),
      spec({ type: 'layernorm', normalized_shape: 4, elementwise_affine: false }),
      spec({ type: 'gelu' }),
      spec({ type: 'flatten' }),
    ],
    inputShape: [1, 4, 4],
  },
  'a residual block that starts with an activation and one that is only dropout': {
    layers: [
      conv(1, 2),
      spec({ type: 'residual', layers: [relu, conv(2, 2)] }),
      spec({ type: 'residual', layers: [spec({ type: 'dropout', p: 0.5 })] }),
      spec({ type: 'flatten' }),
    ],
    inputShape: [1, 3, 3],
  },
};

describe('fused vs unfused eval of convolutional networks', () => {
  for (const [name, c] of Object.entries(cases)) {
    it(`${name}: max |Δ| ≤ ${FUSION_ATOL}`, () => {
      const network = randomNetwork(c.layers, 7);
      const model = new CompiledModel(network, c.transform, 32, c.inputShape);
      const x = randomInput(32, model.inputWidth, 5);
      expectClose(model.forward(x, 32, true), model.forward(x, 32, false), FUSION_ATOL, name);
    });
  }
});

describe('what the compiler made of the CNN', () => {
  it('every BatchNorm2d folded into its conv (residual ones too), ReLUs fused, pixel/16 folded', () => {
    const c = cases["the issue's CNN, pixel/16 folded into the first conv"]!;
    const model = new CompiledModel(randomNetwork(c.layers, 1), c.transform, 8, c.inputShape);
    expect(model.plan.steps.map((s) => `${s.op}:${s.activation.kind}`)).toEqual([
      'conv2d:relu',
      'save_skip:none',
      'conv2d:relu',
      'conv2d:none',
      'add_skip:relu',
      'maxpool2d:none',
      'conv2d:relu',
      'avgpool2d:none',
      'dense:none',
    ]);
    expect(model.plan.inputTransformFolded).toBe(true);
    expect(
      model.plan.layers.filter((l) => l.fate === 'folded_into_previous_conv').map((l) => l.path),
    ).toEqual(['1', '3.body.1', '3.body.4', '6']);
    expect(model.plan.layers.find((l) => l.path === '9')?.fate).toBe('reshape');
    expect(model.plan.skipSlots).toBe(1);
    expect(model.plan.outputShape).toEqual([10]);
  });

  it('a per-pixel input transform before a padded conv runs as its own affine step', () => {
    const c =
      cases[
        "the issue's CNN, a per-pixel standardization (cannot fold through padding: affine step)"
      ]!;
    const model = new CompiledModel(randomNetwork(c.layers, 1), c.transform, 8, c.inputShape);
    expect(model.plan.steps[0]).toMatchObject({ op: 'affine', channels: 64, spatial: 1 });
    expect(model.plan.inputTransformFolded).toBe(false);
  });

  it('a BatchNorm2d before a padded conv is a per-channel affine step', () => {
    const c = cases['BatchNorm2d first into a padded conv (stand-alone per-channel affine)']!;
    const model = new CompiledModel(randomNetwork(c.layers, 1), c.transform, 8, c.inputShape);
    expect(model.plan.steps[0]).toMatchObject({ op: 'affine', channels: 2, spatial: 25 });
    expect(model.plan.layers[0]).toMatchObject({ path: '0', fate: 'standalone_affine' });
    const unpadded = cases['BatchNorm2d first into an unpadded conv (folds into its columns)']!;
    const folded = new CompiledModel(randomNetwork(unpadded.layers, 1), undefined, 8, [2, 5, 5]);
    expect(folded.plan.layers[0]).toMatchObject({ path: '0', fate: 'folded_into_next_conv' });
  });
});

describe('rows stay independent', () => {
  it(`each row of a 150-row batch equals the row alone (≤ ${BATCH_INDEPENDENCE_ATOL}), a batch of one works`, () => {
    const c = cases["the issue's CNN, pixel/16 folded into the first conv"]!;
    // More rows than one GEMM chunk of the first conv (4096 / 64 = 64 samples) exercise chunking.
    const rows = 150;
    const model = new CompiledModel(randomNetwork(c.layers, 4), c.transform, 256, c.inputShape);
    const x = randomInput(rows, 64, 9);
    const batch = model.forward(x, rows, true).slice();
    for (const r of [0, 1, 63, 64, 65, 149]) {
      const alone = model.forward(x.slice(r * 64, (r + 1) * 64), 1, true);
      expectClose(batch.subarray(r * 10, (r + 1) * 10), alone, BATCH_INDEPENDENCE_ATOL, `row ${r}`);
    }
    expectClose(batch, model.forward(x, rows, false), FUSION_ATOL, 'fused vs unfused, 150 rows');
  });
});
