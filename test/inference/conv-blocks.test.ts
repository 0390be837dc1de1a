/**
 * The JS executor's convolution lays out its windows a bounded block of output positions at a
 * time (inference/conv2d-kernel.ts): the scratch does not grow with the image, and blocks that
 * start and end inside a sample, or span samples, give the bits of the plain definition — each
 * output fround(act(b + Σ x·w)), the terms in the weight's [C, kh, kw] order, summed in float64.
 */
import { describe, expect, it } from 'vitest';
import {
  conv2dKernel,
  conv2dScratch,
  type WideConv2dStep,
} from '../../src/inference/conv2d-kernel.js';
import { ACTIVATION_CODES, activate } from '../../src/inference/kernels.js';
import { IM2COL_BLOCK_VALUES, Rng, windowGeometry } from '../../src/nn/index.js';

/** The convolution written out, output by output, in the order the GEMM sums. */
function directConv(x: Float64Array, samples: number, step: WideConv2dStep, act: number) {
  const g = step.geometry;
  const [kh, kw] = g.kernel;
  const out = new Float64Array(samples * step.outChannels * g.outH * g.outW);
  let at = 0;
  for (let s = 0; s < samples; s++) {
    for (let o = 0; o < step.outChannels; o++) {
      for (let oh = 0; oh < g.outH; oh++) {
        for (let ow = 0; ow < g.outW; ow++) {
          let acc = step.bias[o]!;
          let w = o * g.channels * kh * kw;
          for (let c = 0; c < g.channels; c++) {
            for (let i = 0; i < kh; i++) {
              for (let j = 0; j < kw; j++) {
                const ih = oh * g.stride[0] - g.padding[0] + i * g.dilation[0];
                const iw = ow * g.stride[1] - g.padding[1] + j * g.dilation[1];
                const inside = ih >= 0 && ih < g.inH && iw >= 0 && iw < g.inW;
                const v = inside ? x[((s * g.channels + c) * g.inH + ih) * g.inW + iw]! : 0;
                acc += v * step.weight[w++]!;
              }
            }
          }
          out[at++] = activate(act, 0, acc);
        }
      }
    }
  }
  return out;
}

describe('the JS executor’s convolution in blocks of output positions', () => {
  it('blocks inside a sample and across samples give the bits of the written-out convolution', () => {
    // C·kh·kw = 512·9 = 4608 values a row: 56 rows a block, 100 positions a sample.
    const geometry = windowGeometry(512, 10, 10, [3, 3], [1, 1], [1, 1]);
    const outChannels = 5;
    const rng = new Rng(3);
    const k = 512 * 9;
    const step = {
      op: 'conv2d',
      geometry,
      outChannels,
      weight: Float64Array.from({ length: outChannels * k }, () =>
        Math.fround(rng.normal() * 0.05),
      ),
      bias: Float64Array.from({ length: outChannels }, () => Math.fround(rng.normal())),
      activation: { kind: 'relu' },
    } as unknown as WideConv2dStep;
    const { rows, cols, product } = conv2dScratch(step);
    expect(rows).toBe(Math.floor(IM2COL_BLOCK_VALUES / k));
    expect(100 % rows).not.toBe(0);
    const samples = 3;
    const x = Float64Array.from({ length: samples * 512 * 100 }, () => Math.fround(rng.normal()));
    const out = new Float64Array(samples * outChannels * 100);
    const act = ACTIVATION_CODES.relu;
    conv2dKernel(x, samples, step, act, 0, out, new Float64Array(cols), new Float64Array(product));
    expect(out).toEqual(directConv(x, samples, step, act));
  });

  it('the scratch stays a few MiB at the window limit’s scale ([64, 512, 512], 3×3)', () => {
    const step = {
      geometry: windowGeometry(64, 512, 512, [3, 3], [1, 1], [1, 1]),
      outChannels: 64,
    };
    const { cols, product } = conv2dScratch(step);
    expect((cols + product) * 8).toBeLessThanOrEqual(2 * IM2COL_BLOCK_VALUES * 8);
    // One sample's windows were 262,144 rows of 576 values.
    expect(cols).toBeLessThan(512 * 512 * 576);
  });

  it('a row longer than the block is one row a block', () => {
    const step = {
      geometry: windowGeometry(2 ** 15, 4, 4, [3, 3], [1, 1], [0, 0]),
      outChannels: 2,
    };
    expect(conv2dScratch(step)).toEqual({ rows: 1, cols: 9 * 2 ** 15, product: 2 });
  });
});
