/**
 * A BatchNorm (or input transform) whose inputs have a large mean next to their spread, folded
 * into the Linear or Conv2d after it: the input is centred on that mean first
 * (CompileContext.centrePending), so the fused path keeps float32's usual error. Folded as it
 * was, the inputs of mean 1e4 and standard deviation 1e-2 of the fidelity review of 2026-12-04
 * served outputs 2e-2 to 8e-2 off the unfused path. An affine run as its own step computes in
 * float64 and needs no centring.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec } from '../../src/checkpoint/index.js';
import { CENTRE_SHIFT, CompiledModel, exportOnnx } from '../../src/inference/index.js';
import { BatchNorm, type FeatureTransform, Rng, type Sequential } from '../../src/nn/index.js';
import { bn2d, conv, spec } from '../helpers/cnn-combinations.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { bn, linear, relu } from '../helpers/layer-combinations.js';
import { onnxSession, runOnnx } from '../helpers/onnx-runtime.js';
import { FUSION_ATOL, FUSION_RTOL } from '../helpers/tolerances.js';

const MEAN = 1e4;
const STD = 1e-2;

/** Random weights; every BatchNorm's running statistics those of inputs of MEAN and STD. */
function network(layers: LayerSpec[], seed: number, largeMean: (path: number) => boolean) {
  const rng = new Rng(seed);
  const net = buildSequential(layers, { init: rng, dropout: rng });
  net.modules.forEach((m, i) => {
    if (!(m instanceof BatchNorm)) return;
    for (let k = 0; k < m.numFeatures; k++) {
      m.runningMean.data[k] = largeMean(i) ? MEAN + rng.normal() : rng.normal();
      m.runningVar.data[k] = largeMean(i) ? STD * STD : 1;
      m.weight!.value.data[k] = 0.5 + rng.next();
      m.bias!.value.data[k] = 0.3 * rng.normal();
    }
  });
  return net.eval();
}

/** Rows of MEAN + STD·N(0, 1) per value, in float32 (what a client sends). */
function inputs(rows: number, width: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * width }, () => MEAN + STD * rng.normal());
}

function fusedAndUnfused(
  net: Sequential,
  transform: FeatureTransform | undefined,
  inputShape: number[],
  rows: number,
) {
  const model = new CompiledModel(net, transform, rows, inputShape, { engine: TEST_ENGINE });
  const width = inputShape.reduce((a, b) => a * b, 1);
  const x = inputs(rows, width, 5);
  return {
    model,
    fused: model.forward(x, rows, true),
    unfused: model.forward(x, rows, false),
  };
}

describe('large-mean inputs before a fold', () => {
  it('BatchNorm1d first, then a Linear: centred, then folded into its columns', () => {
    const net = network([bn(6), linear(6, 4)], 1, (i) => i === 0);
    const { model, fused, unfused } = fusedAndUnfused(net, undefined, [6], 64);
    expect(model.plan.steps.map((s) => s.op)).toEqual(['affine', 'dense']);
    expectClose(fused, unfused, FUSION_ATOL, 'bn-linear');
  });

  it('a standard scaler of such inputs, then a Linear', () => {
    const rng = new Rng(3);
    const transform = {
      shift: Array.from({ length: 6 }, () => MEAN + rng.normal()),
      scale: Array.from({ length: 6 }, () => 1 / STD),
    };
    const net = network([linear(6, 4), relu, linear(4, 3)], 2, () => false);
    const { fused, unfused } = fusedAndUnfused(net, transform, [6], 64);
    expectClose(fused, unfused, FUSION_ATOL, 'transform-linear');
  });

  it('BatchNorm2d first, then a Conv2d without padding (centred, folded) and with it (an affine step)', () => {
    for (const [padding, steps] of [
      [0, ['affine', 'conv2d']],
      [1, ['affine', 'conv2d']],
    ] as const) {
      const net = network([bn2d(2), conv(2, 3, { padding })], 4, (i) => i === 0);
      const { model, fused, unfused } = fusedAndUnfused(net, undefined, [2, 5, 5], 16);
      expect(model.plan.steps.map((s) => s.op)).toEqual(steps);
      expectClose(fused, unfused, FUSION_ATOL, `bn-conv padding ${padding}`);
    }
  });

  it('BatchNorm1d first, then a ReLU: its own affine step, in float64, needs no centring', () => {
    const net = network([bn(6), relu, linear(6, 3)], 6, (i) => i === 0);
    const { model, fused, unfused } = fusedAndUnfused(net, undefined, [6], 64);
    expect(model.plan.steps.map((s) => `${s.op}:${s.activation.kind}`)).toEqual([
      'affine:relu',
      'dense:none',
    ]);
    expectClose(fused, unfused, FUSION_ATOL, 'bn-relu');
  });

  it('a tiny γ (a channel pruned to 1e-40) or a large learned β is no reason to centre: no step, no NaN', () => {
    // Feature 2: inputs of mean 1e4 scaled by γ = 1e-40; or inputs about 0.5 shifted by β = 50.
    for (const [gamma, beta, mean, variance] of [
      [1e-40, 20, MEAN, STD * STD],
      [1, 50, 0.5, 1],
    ] as const) {
      const net = network([bn(6), linear(6, 4)], 8, (i) => i === 0);
      const first = net.modules[0] as BatchNorm;
      first.weight!.value.data[2] = gamma;
      first.bias!.value.data[2] = beta;
      first.runningMean.data[2] = mean;
      first.runningVar.data[2] = variance;
      const { model, fused, unfused } = fusedAndUnfused(net, undefined, [6], 16);
      const centred = model.plan.steps[0]!;
      expect(centred.op).toBe('affine');
      // The step leaves that feature alone: x + (−0).
      expect(centred.op === 'affine' && Object.is(centred.shift[2], -0)).toBe(true);
      expect(fused.every(Number.isFinite)).toBe(true);
      // Outputs of thousands here (inputs of 1e4 against a mean of 0.5): FUSION_ATOL below 10,
      // FUSION_RTOL above.
      expectRelClose(
        fused,
        unfused,
        FUSION_RTOL,
        `γ ${gamma}, β ${beta}`,
        FUSION_ATOL / FUSION_RTOL,
      );
    }
  });

  it('a padded Conv2d after a BatchNorm2d whose shift is 0 folds it uncentred: padding zeros stay the transformed input’s', () => {
    // s = 1/√(3.5 + 0.5) = 0.5, μ·s = 50 > CENTRE_SHIFT, t = β − μ·s = 0.
    const net = network(
      [spec({ type: 'batchnorm2d', num_features: 2, eps: 0.5 }), conv(2, 3, { padding: 1 })],
      9,
      () => false,
    );
    const first = net.modules[0] as BatchNorm;
    first.runningMean.data.fill(100);
    first.runningVar.data.fill(3.5);
    first.weight!.value.data.fill(1);
    first.bias!.value.data.fill(50);
    const model = new CompiledModel(net, undefined, 4, [2, 5, 5], { engine: TEST_ENGINE });
    const rng = new Rng(10);
    const x = Float32Array.from({ length: 4 * 50 }, () => 100 + rng.normal());
    expect(model.plan.steps.map((s) => s.op)).toEqual(['conv2d']);
    expectClose(model.forward(x, 4, true), model.forward(x, 4, false), FUSION_ATOL, 'padded');
  });

  it('an input transform that leaves a feature as it is, then a large-mean BatchNorm: centred on the BatchNorm’s mean', () => {
    const transform = { shift: Array(6).fill(0), scale: Array(6).fill(1) };
    const net = network([bn(6), linear(6, 4)], 11, (i) => i === 0);
    const { model, fused, unfused } = fusedAndUnfused(net, transform, [6], 64);
    expect(model.plan.steps.map((s) => s.op)).toEqual(['affine', 'dense']);
    expectClose(fused, unfused, FUSION_ATOL, 'transform-bn-linear');
  });

  it('leaves a plan whose inputs are centred within CENTRE_SHIFT as it was: no centring step', () => {
    const net = network(
      [bn(6), linear(6, 4), bn(4), spec({ type: 'relu' }), linear(4, 3)],
      7,
      () => false,
    );
    const model = new CompiledModel(net, undefined, 8, [6], { engine: TEST_ENGINE });
    expect(CENTRE_SHIFT).toBe(16);
    expect(model.plan.steps.map((s) => `${s.op}:${s.activation.kind}`)).toEqual([
      'dense:relu',
      'dense:none',
    ]);
  });
});

describe('large-mean inputs before an affine step, in the ONNX export', () => {
  // A padded Conv2d folds no shifted affine, so the export writes the step as float32 ops; x·s + t
  // rounded x·s to |t|·2⁻²⁴ and served 1e-2 off PyTorch (review of 2026-12-04), where the
  // executors compute it in float64. Centred, (x + c)·s + r, it keeps float32's usual error.
  const names = { graphName: 'test', inputName: 'input', outputName: 'logits' };
  const cases: [string, Sequential, FeatureTransform | undefined][] = [
    [
      'BatchNorm2d, then a padded Conv2d',
      network([bn2d(2), conv(2, 3, { padding: 1 })], 4, (i) => i === 0),
      undefined,
    ],
    [
      'a standard scaler, then a padded Conv2d',
      network([conv(2, 3, { padding: 1 }), bn2d(3)], 7, () => false),
      {
        shift: Array.from({ length: 50 }, (_, k) => MEAN + (k % 7) * STD),
        scale: Array.from({ length: 50 }, () => 1 / STD),
      },
    ],
  ];
  for (const [name, net, transform] of cases) {
    it(`${name}: the export's outputs within FUSION_ATOL of the unfused path`, async () => {
      const { model, unfused } = fusedAndUnfused(net, transform, [2, 5, 5], 16);
      expect(model.plan.steps[0]!.op).toBe('affine');
      const session = await onnxSession(exportOnnx(model.plan, names));
      const x = inputs(16, 50, 5);
      const onnx = (await runOnnx(session, x, 16, [2, 5, 5])).logits!;
      expectClose(onnx, unfused, FUSION_ATOL, name);
    });
  }

  it('centres on the input’s centre, as the fold does: a large learned β alone adds no step', async () => {
    const hasCentre = (net: Sequential) => {
      const model = new CompiledModel(net, undefined, 4, [2, 5, 5], { engine: TEST_ENGINE });
      expect(model.plan.steps[0]!.op).toBe('affine');
      return Buffer.from(exportOnnx(model.plan, names)).includes('.centre');
    };
    const largeMean = network([bn2d(2), conv(2, 3, { padding: 1 })], 4, (i) => i === 0);
    expect(hasCentre(largeMean)).toBe(true);
    const largeBeta = network([bn2d(2), conv(2, 3, { padding: 1 })], 4, () => false);
    const first = largeBeta.modules[0] as BatchNorm;
    first.bias!.value.data.fill(1e5);
    expect(hasCentre(largeBeta)).toBe(false);
  });
});
