/**
 * Finite-difference gradient checks of every layer's backward pass and of the losses: the
 * analytic gradients (backward) against central differences of a scalar objective
 * L = Σ w ⊙ forward(x) with fixed random w (so gradOutput = w), in float64 on the float32 engine.
 */
import { describe, expect, it } from 'vitest';
import {
  AlphaDropout,
  BatchNorm1d,
  BatchNorm2d,
  crossEntropy,
  Dropout,
  GELU,
  Identity,
  LayerNorm,
  LeakyReLU,
  Linear,
  type LossResult,
  type Module,
  mseLoss,
  ReLU,
  Rng,
  SELU,
  Sequential,
  Sigmoid,
  Tanh,
  Tensor,
} from '../../src/nn/index.js';
import {
  awayFromZero,
  centralDifference,
  expectGradcheck,
  expectGradientsMatch,
  gradcheckModule,
  randomTensor,
} from '../helpers/gradcheck.js';
import { KINK_MARGIN } from '../helpers/statistical-tolerances.js';

/** Sets every parameter of a module to seeded random values (so γ ≠ 1, β ≠ 0 etc.). */
function randomizeParameters<M extends Module>(module: M, seed: number, scale = 1): M {
  const rng = new Rng(seed);
  for (const p of module.parameters()) {
    const d = p.value.data;
    for (let i = 0; i < d.length; i++) d[i] = rng.uniform(-scale, scale);
  }
  return module;
}

/** BatchNorm weights in [0.5, 1.5] (sign and size irrelevant to the check, but realistic). */
function randomizeBatchNorm<M extends BatchNorm1d | BatchNorm2d>(bn: M, seed: number): M {
  const rng = new Rng(seed);
  if (bn.weight && bn.bias) {
    for (let i = 0; i < bn.numFeatures; i++) {
      bn.weight.value.data[i] = rng.uniform(0.5, 1.5);
      bn.bias.value.data[i] = rng.uniform(-0.5, 0.5);
    }
  }
  return bn;
}

describe('gradcheck: Linear', () => {
  it('with bias: input, weight and bias gradients', () => {
    const make = () => new Linear({ inFeatures: 5, outFeatures: 4 }, new Rng(1));
    const report = gradcheckModule(make, randomTensor(new Rng(2), [3, 5], 2), 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });

  it('without bias: input and weight gradients', () => {
    const make = () => new Linear({ inFeatures: 4, outFeatures: 3, bias: false }, new Rng(3));
    const report = gradcheckModule(make, randomTensor(new Rng(4), [5, 4], 2), 'weighted-sum');
    expectGradcheck(report, ['weight']);
  });

  it('on a 3D input [N, L, in] (leading dimensions are batch)', () => {
    const make = () => new Linear({ inFeatures: 3, outFeatures: 2 }, new Rng(5));
    const report = gradcheckModule(make, randomTensor(new Rng(6), [2, 3, 3], 2), 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });
});

describe('gradcheck: BatchNorm', () => {
  it('BatchNorm1d train mode, 2D input [N, C]: batch statistics are differentiated too', () => {
    const make = () => randomizeBatchNorm(new BatchNorm1d({ numFeatures: 3 }), 7);
    const x = randomTensor(new Rng(8), [6, 3], 2);
    const report = gradcheckModule(make, x, 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });

  it('BatchNorm1d train mode, 3D input [N, C, L]', () => {
    const make = () => randomizeBatchNorm(new BatchNorm1d({ numFeatures: 2 }), 9);
    const x = randomTensor(new Rng(10), [3, 2, 4], 2);
    const report = gradcheckModule(make, x, 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });

  it('BatchNorm1d train mode without affine parameters', () => {
    const make = () => new BatchNorm1d({ numFeatures: 3, affine: false });
    const x = randomTensor(new Rng(11), [5, 3], 2);
    const report = gradcheckModule(make, x, 'weighted-sum');
    expectGradcheck(report, []);
  });

  it('BatchNorm1d eval mode: running statistics are constants', () => {
    const make = () => {
      const bn = randomizeBatchNorm(new BatchNorm1d({ numFeatures: 3 }), 12);
      bn.runningMean.data.set([0.3, -0.7, 1.1]);
      bn.runningVar.data.set([0.5, 2.0, 1.3]);
      return bn.eval();
    };
    const x = randomTensor(new Rng(13), [4, 3], 2);
    const report = gradcheckModule(make, x, 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });

  it('BatchNorm1d eval mode, 3D input [N, C, L]', () => {
    const make = () => {
      const bn = randomizeBatchNorm(new BatchNorm1d({ numFeatures: 2 }), 14);
      bn.runningMean.data.set([-0.2, 0.4]);
      bn.runningVar.data.set([0.8, 1.7]);
      return bn.eval();
    };
    const x = randomTensor(new Rng(15), [2, 2, 3], 2);
    expectGradcheck(gradcheckModule(make, x, 'weighted-sum'), ['weight', 'bias']);
  });

  it('BatchNorm2d train mode, input [N, C, H, W]', () => {
    const make = () => randomizeBatchNorm(new BatchNorm2d({ numFeatures: 2 }), 16);
    const x = randomTensor(new Rng(17), [3, 2, 2, 3], 2);
    const report = gradcheckModule(make, x, 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });
});

describe('gradcheck: LayerNorm', () => {
  it('with elementwise affine', () => {
    const make = () => randomizeParameters(new LayerNorm({ normalizedShape: [5] }), 18);
    const report = gradcheckModule(make, randomTensor(new Rng(19), [4, 5], 2), 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });

  it('without elementwise affine', () => {
    const make = () => new LayerNorm({ normalizedShape: [5], elementwiseAffine: false });
    const report = gradcheckModule(make, randomTensor(new Rng(20), [3, 5], 2), 'weighted-sum');
    expectGradcheck(report, []);
  });

  it('over two trailing dimensions [3, 2] of a [2, 3, 2] input', () => {
    const make = () => randomizeParameters(new LayerNorm({ normalizedShape: [3, 2] }), 21);
    const report = gradcheckModule(make, randomTensor(new Rng(22), [2, 3, 2], 2), 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });
});

describe('gradcheck: activations', () => {
  const smooth: [string, () => Module][] = [
    ['GELU (approximate none)', () => new GELU()],
    ['GELU (approximate tanh)', () => new GELU({ approximate: 'tanh' })],
    ['Tanh', () => new Tanh()],
    ['Sigmoid', () => new Sigmoid()],
    ['Identity', () => new Identity()],
  ];
  for (const [name, make] of smooth) {
    it(`${name}`, () => {
      const report = gradcheckModule(make, randomTensor(new Rng(23), [4, 6], 3), 'weighted-sum');
      expectGradcheck(report, []);
    });
  }

  // Kinked at 0: inputs are kept at least KINK_MARGIN (≫ the step) away from it.
  const kinked: [string, () => Module][] = [
    ['ReLU', () => new ReLU()],
    ['LeakyReLU (default slope 0.01)', () => new LeakyReLU()],
    ['LeakyReLU (slope 0.2)', () => new LeakyReLU({ negativeSlope: 0.2 })],
    ['SELU', () => new SELU()],
  ];
  for (const [name, make] of kinked) {
    it(`${name} (inputs away from the kink)`, () => {
      const x = awayFromZero(new Rng(24), [4, 6], KINK_MARGIN, 3);
      const report = gradcheckModule(make, x, 'weighted-sum');
      expectGradcheck(report, []);
      // Both sides of the kink were exercised.
      expect(x.data.some((v) => v < 0)).toBe(true);
      expect(x.data.some((v) => v > 0)).toBe(true);
    });
  }
});

describe('gradcheck: Dropout and AlphaDropout in train mode (mask fixed by the seed)', () => {
  const cases: [string, (seed: number) => Module][] = [
    ['Dropout(p=0.3)', (seed) => new Dropout({ p: 0.3 }, new Rng(seed))],
    ['AlphaDropout(p=0.3)', (seed) => new AlphaDropout({ p: 0.3 }, new Rng(seed))],
  ];
  for (const [name, build] of cases) {
    it(`${name}: the same seed gives the same mask, and backward applies it`, () => {
      const make = () => build(25);
      const x = randomTensor(new Rng(26), [6, 8], 2);
      // The premise: re-creating the layer with the same seed reproduces the output exactly.
      expect(Array.from(make().forward(x.clone()).data)).toEqual(
        Array.from(make().forward(x.clone()).data),
      );
      const report = gradcheckModule(make, x, 'weighted-sum');
      expectGradcheck(report, []);
      // Some elements were dropped (gradient 0) and some kept.
      const dx = report.input.analytic;
      expect(dx.some((v) => v === 0)).toBe(true);
      expect(dx.some((v) => v !== 0)).toBe(true);
    });
  }
});

describe('gradcheck: Sequential', () => {
  const makeNetwork = () =>
    new Sequential([
      new Linear({ inFeatures: 4, outFeatures: 6 }, new Rng(30)),
      randomizeBatchNorm(new BatchNorm1d({ numFeatures: 6 }), 31),
      new GELU(),
      new Dropout({ p: 0.25 }, new Rng(32)),
      new Linear({ inFeatures: 6, outFeatures: 5 }, new Rng(33)),
      randomizeParameters(new LayerNorm({ normalizedShape: [5] }), 34),
      new Tanh(),
      new Linear({ inFeatures: 5, outFeatures: 3, bias: false }, new Rng(35)),
      new Sigmoid(),
    ]);
  const names = [
    '0.weight',
    '0.bias',
    '1.weight',
    '1.bias',
    '4.weight',
    '4.bias',
    '5.weight',
    '5.bias',
    '7.weight',
  ];

  it('Linear → BatchNorm1d → GELU → Dropout → Linear → LayerNorm → Tanh → Linear → Sigmoid', () => {
    const x = randomTensor(new Rng(36), [5, 4], 2);
    const report = gradcheckModule(makeNetwork, x, 'weighted-sum');
    expectGradcheck(report, names);
  });

  it('the same network under cross-entropy with label smoothing (the training objective)', () => {
    const targets = [0, 2, 1, 1, 0];
    const head = (y: Tensor) => {
      const { loss, grad } = crossEntropy(y, targets, 0.1);
      return { value: loss, grad };
    };
    const x = randomTensor(new Rng(37), [5, 4], 2);
    const report = gradcheckModule(makeNetwork, x, head);
    expectGradcheck(report, names);
  });

  it('BatchNorm1d, SELU and AlphaDropout in eval mode', () => {
    const make = () => {
      const bn = randomizeBatchNorm(new BatchNorm1d({ numFeatures: 3 }), 38);
      bn.runningMean.data.set([0.1, -0.2, 0.3]);
      bn.runningVar.data.set([1.5, 0.7, 1.1]);
      return new Sequential([
        new Linear({ inFeatures: 2, outFeatures: 3 }, new Rng(39)),
        bn,
        new LeakyReLU({ negativeSlope: 0.1 }),
        new AlphaDropout({ p: 0.5 }, new Rng(40)),
        new Linear({ inFeatures: 3, outFeatures: 2 }, new Rng(41)),
      ]).eval();
    };
    // LeakyReLU's kink: check the pre-activations of this input stay away from 0.
    const x = randomTensor(new Rng(42), [4, 2], 2);
    const probe = make();
    const pre = probe.modules[1]!.forward(probe.modules[0]!.forward(x.clone()));
    expect(Math.min(...Array.from(pre.data, Math.abs))).toBeGreaterThan(KINK_MARGIN / 10);
    const report = gradcheckModule(make, x, 'weighted-sum');
    expectGradcheck(report, ['0.weight', '0.bias', '1.weight', '1.bias', '4.weight', '4.bias']);
  });
});

describe('gradcheck: losses (gradient of the mean loss with respect to its input)', () => {
  function checkLoss(loss: (input: Tensor) => LossResult, input: Tensor, what: string): void {
    const analytic = loss(input).grad;
    expect(analytic.shape).toEqual(input.shape);
    const data = input.data.slice();
    const numeric = new Float64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      numeric[i] = centralDifference(data, i, () => loss(new Tensor(data, input.shape)).loss);
    }
    expectGradientsMatch({ analytic: analytic.data, numeric }, what);
  }

  const logits = randomTensor(new Rng(50), [6, 4], 3);
  const targets = [0, 3, 1, 2, 2, 0];
  for (const smoothing of [0, 0.1, 0.4]) {
    it(`crossEntropy with label smoothing ${smoothing}`, () => {
      checkLoss((z) => crossEntropy(z, targets, smoothing), logits, `ce(ε=${smoothing})`);
    });
  }

  it('crossEntropy with large logits (log-sum-exp stays finite and differentiable)', () => {
    const big = randomTensor(new Rng(51), [3, 5], 3);
    for (let i = 0; i < big.numel; i++) big.data[i] = big.data[i]! + 80;
    checkLoss((z) => crossEntropy(z, [4, 0, 2], 0.05), big, 'ce(large logits)');
  });

  it('mseLoss', () => {
    const target = randomTensor(new Rng(52), [5, 2], 2);
    checkLoss((y) => mseLoss(y, target), randomTensor(new Rng(53), [5, 2], 2), 'mse');
  });
});
