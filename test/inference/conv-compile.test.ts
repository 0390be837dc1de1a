/**
 * Eval-mode compilation of convolutional networks: Conv2d + BatchNorm2d folded as PyTorch's
 * fuse_conv_bn_eval (also inside residual blocks), ReLU fused, pooling, Flatten, LayerNorm over
 * [C, H, W], the input transform folded into the first Conv2d where exact — fused vs unfused on
 * every arrangement the compiler treats differently, rows independent.
 */
import { describe, expect, it } from 'vitest';
import { CompiledModel } from '../../src/inference/index.js';
import { cnnCases as cases, randomInput, randomNetwork } from '../helpers/cnn-combinations.js';
import { expectClose } from '../helpers/compare.js';
import { BATCH_INDEPENDENCE_ATOL, FUSION_ATOL } from '../helpers/tolerances.js';

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
