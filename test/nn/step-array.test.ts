/**
 * Module.reuseArrays (nn/step-array.ts): a network that reuses its per-step arrays trains to the
 * same bits as one that allocates new ones, on both kernel sets, across batch sizes that change
 * (an epoch's smaller last batch); and without reuse, or in eval mode, every call's tensors stay
 * the caller's.
 */
import { describe, expect, it } from 'vitest';
import {
  AdamW,
  BatchNorm1d,
  createKernels,
  crossEntropy,
  Dropout,
  type Kernels,
  Linear,
  ReLU,
  Rng,
  referenceKernels,
  Sequential,
} from '../../src/nn/index.js';
import { randomTensor } from '../helpers/gradcheck.js';

const network = (): Sequential =>
  new Sequential([
    new Linear({ inFeatures: 6, outFeatures: 8 }, new Rng(1)),
    new BatchNorm1d({ numFeatures: 8 }),
    new ReLU(),
    new Dropout({ p: 0.3 }, new Rng(2)),
    new Linear({ inFeatures: 8, outFeatures: 3 }, new Rng(3)),
  ]);

/** Trains `steps` AdamW steps on batches of the given sizes; every parameter's values after. */
function train(kernels: Kernels, reuse: boolean, batchSizes: number[]): Float32Array[] {
  const net = network().useKernels(kernels).reuseArrays(reuse);
  const opt = new AdamW(net.parameters(), { lr: 0.01, weightDecay: 0.01, kernels });
  const rng = new Rng(4);
  for (const n of batchSizes) {
    const x = randomTensor(rng, [n, 6]);
    const y = Array.from({ length: n }, () => rng.int(3));
    opt.zeroGrad();
    const { grad } = crossEntropy(net.forward(x), y, 0.1);
    net.backwardParameters(grad);
    opt.step();
  }
  return net.parameters().map((p) => p.value.data.slice());
}

describe('reusing per-step arrays', () => {
  const kernelSets: [string, Kernels][] = [
    ['wasm', createKernels('wasm').kernels],
    ['js', referenceKernels],
  ];
  for (const [name, kernels] of kernelSets) {
    it(`trains to the same bits as new arrays every step (${name} kernels, batches 5, 5, 3, 5)`, () => {
      const sizes = [5, 5, 3, 5];
      const fresh = train(kernels, false, sizes);
      const reused = train(kernels, true, sizes);
      expect(reused.map((p) => Array.from(p))).toEqual(fresh.map((p) => Array.from(p)));
      // Bit patterns, so that −0 and +0 or two NaNs are told apart.
      reused.forEach((p, i) => {
        expect(new Uint32Array(p.buffer)).toEqual(new Uint32Array(fresh[i]!.buffer));
      });
    });
  }

  it('hands out the same output array every train-mode step, and new ones in eval mode or when off', () => {
    const net = network().reuseArrays();
    const x = randomTensor(new Rng(5), [4, 6]);
    const first = net.forward(x).data;
    expect(net.forward(x).data).toBe(first);
    net.eval();
    const e1 = net.forward(x).data;
    expect(net.forward(x).data).not.toBe(e1);
    net.train().reuseArrays(false);
    const a = net.forward(x);
    const b = net.forward(x);
    expect(b.data).not.toBe(a.data);
    expect(a.data).not.toBe(first);
  });
});
