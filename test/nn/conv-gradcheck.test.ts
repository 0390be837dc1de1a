/**
 * Finite-difference gradient checks of the convolutional layers (see gradcheck.test.ts for the
 * method): Conv2d, the three poolings, Flatten, LayerNorm over [C, H, W] and the residual block
 * in train mode (BatchNorm2d batch statistics inside).
 */
import { describe, expect, it } from 'vitest';
import {
  AdaptiveAvgPool2d,
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  Flatten,
  LayerNorm,
  MaxPool2d,
  type Module,
  ReLU,
  Residual,
  Rng,
  Tensor,
} from '../../src/nn/index.js';
import { expectGradcheck, gradcheckModule, randomTensor } from '../helpers/gradcheck.js';

/** Distinct values at least 0.05 apart (shuffled), so no max pooling window is near a tie. */
function spreadTensor(seed: number, shape: number[]): Tensor {
  const t = Tensor.zeros(shape);
  const order = new Rng(seed).permutation(t.numel);
  for (let i = 0; i < t.numel; i++) t.data[i] = (order[i]! - t.numel / 2) * 0.05;
  return t;
}

describe('gradcheck: Conv2d', () => {
  it('3×3, padding 1, bias: input, weight and bias gradients', () => {
    const make = () =>
      new Conv2d(
        { inChannels: 2, outChannels: 3, kernelSize: [3, 3], padding: [1, 1] },
        new Rng(1),
      );
    const report = gradcheckModule(make, randomTensor(new Rng(2), [2, 2, 5, 4], 2), 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });

  it('rectangular kernel, stride, dilation, no bias', () => {
    const make = () =>
      new Conv2d(
        {
          inChannels: 3,
          outChannels: 2,
          kernelSize: [2, 3],
          stride: [2, 1],
          padding: [1, 0],
          dilation: [1, 2],
          bias: false,
        },
        new Rng(3),
      );
    const report = gradcheckModule(make, randomTensor(new Rng(4), [2, 3, 6, 7], 2), 'weighted-sum');
    expectGradcheck(report, ['weight']);
  });
});

describe('gradcheck: pooling and Flatten', () => {
  const cases: [string, () => Module][] = [
    ['MaxPool2d(2)', () => new MaxPool2d({ kernelSize: [2, 2] })],
    [
      'MaxPool2d(3, stride 2, padding 1)',
      () => new MaxPool2d({ kernelSize: [3, 3], stride: [2, 2], padding: [1, 1] }),
    ],
    [
      'AvgPool2d(3, stride 2, padding 1), count_include_pad',
      () => new AvgPool2d({ kernelSize: [3, 3], stride: [2, 2], padding: [1, 1] }),
    ],
    [
      'AvgPool2d(3, stride 2, padding 1), count_include_pad=False',
      () =>
        new AvgPool2d({
          kernelSize: [3, 3],
          stride: [2, 2],
          padding: [1, 1],
          countIncludePad: false,
        }),
    ],
    ['AdaptiveAvgPool2d([3, 2]) on 5×7', () => new AdaptiveAvgPool2d({ outputSize: [3, 2] })],
    ['Flatten', () => new Flatten()],
  ];
  for (const [name, make] of cases) {
    it(name, () => {
      const report = gradcheckModule(make, spreadTensor(5, [2, 2, 5, 7]), 'weighted-sum');
      expectGradcheck(report, []);
    });
  }

  it('Flatten reshapes forward and back', () => {
    const f = new Flatten({ startDim: 2 });
    const y = f.forward(Tensor.zeros([2, 3, 4, 5]));
    expect(y.shape).toEqual([2, 3, 20]);
    expect(f.backward(y).shape).toEqual([2, 3, 4, 5]);
  });
});

describe('gradcheck: LayerNorm over [C, H, W]', () => {
  it('input, weight and bias gradients', () => {
    const make = () => {
      const ln = new LayerNorm({ normalizedShape: [2, 3, 3] });
      const rng = new Rng(6);
      for (const p of ln.parameters())
        for (let i = 0; i < p.value.numel; i++) p.value.data[i] = rng.uniform(0.5, 1.5);
      return ln;
    };
    const report = gradcheckModule(make, randomTensor(new Rng(7), [2, 2, 3, 3], 2), 'weighted-sum');
    expectGradcheck(report, ['weight', 'bias']);
  });
});

describe('gradcheck: the residual block, train mode', () => {
  it('relu(conv → bn → relu → conv → bn (x) + x): input and every parameter', () => {
    const make = () => {
      const rng = new Rng(8);
      const block = new Residual([
        new Conv2d({ inChannels: 2, outChannels: 2, kernelSize: [3, 3], padding: [1, 1] }, rng),
        new BatchNorm2d({ numFeatures: 2 }),
        new ReLU(),
        new Conv2d({ inChannels: 2, outChannels: 2, kernelSize: [3, 3], padding: [1, 1] }, rng),
        new BatchNorm2d({ numFeatures: 2 }),
      ]);
      for (const [name, p] of block.namedParameters()) {
        if (name.startsWith('body.1.') || name.startsWith('body.4.')) {
          for (let i = 0; i < p.value.numel; i++)
            p.value.data[i] = name.endsWith('weight')
              ? rng.uniform(0.5, 1.5)
              : rng.uniform(-0.5, 0.5);
        }
      }
      return block.train();
    };
    const report = gradcheckModule(make, randomTensor(new Rng(9), [2, 2, 3, 3], 2), 'weighted-sum');
    expectGradcheck(report, [
      'body.0.weight',
      'body.0.bias',
      'body.1.weight',
      'body.1.bias',
      'body.3.weight',
      'body.3.bias',
      'body.4.weight',
      'body.4.bias',
    ]);
  });
});
