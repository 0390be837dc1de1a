import { forEachSampleRun, im2col, im2colBlockRows, im2colWidth } from '../nn/index.js';
import { denseKernel } from './kernels.js';
import type { Conv2dStep } from './plan.js';

/** A conv step with its parameters widened to float64 for the kernels. */
export interface WideConv2dStep extends Omit<Conv2dStep, 'weight' | 'bias'> {
  weight: Float64Array;
  bias: Float64Array;
}

/** Output positions per GEMM of a conv step, and the scratch (im2col rows, GEMM output) it needs. */
export function conv2dScratch(step: Pick<Conv2dStep, 'geometry' | 'outChannels'>): {
  rows: number;
  cols: number;
  product: number;
} {
  // A [64, 512, 512] input under a 3×3 kernel asked for its whole sample's windows before:
  // 262,144 rows of 576 values (1.1 GiB); now 455 rows at a time.
  const k = im2colWidth(step.geometry);
  const rows = im2colBlockRows(k, step.outChannels);
  return { rows, cols: rows * k, product: rows * step.outChannels };
}

/**
 * A convolution as im2col + the dense GEMM kernel, a block of output positions at a time: the
 * batch's positions (sample by sample, row p = oh·W_out + ow within one) are cut into blocks of
 * conv2dScratch's rows, which may start and end inside a sample or span several; the windows of a
 * block become the rows of `cols` [rows, C·kh·kw], denseKernel computes act(cols · Wᵀ + b) into
 * `product` [rows, out] (bias, activation and float32 rounding in its epilogue), and the rows are
 * transposed into the [out, H_out, W_out] layout of their samples. Each output is one row's dot
 * product, its terms in the same order whatever the block, so the blocking changes no bit.
 */
export function conv2dKernel(
  x: Float64Array,
  samples: number,
  step: WideConv2dStep,
  act: number,
  slope: number,
  out: Float64Array,
  cols: Float64Array,
  product: Float64Array,
): void {
  const g = step.geometry;
  const p = g.outH * g.outW;
  const k = im2colWidth(g);
  const o = step.outChannels;
  const inSize = g.channels * g.inH * g.inW;
  const outSize = o * p;
  const { rows: block } = conv2dScratch(step);
  const total = samples * p;
  for (let start = 0; start < total; start += block) {
    const end = Math.min(start + block, total);
    forEachSampleRun(start, end, p, (sample, position, count, row) => {
      im2col(x, sample * inSize, g, cols, row, position, count);
    });
    denseKernel(cols, end - start, k, o, step.weight, step.bias, act, slope, product);
    forEachSampleRun(start, end, p, (sample, position, count, row) => {
      const dst = sample * outSize + position;
      const src = row * o;
      for (let c = 0; c < o; c++) {
        const plane = dst + c * p;
        for (let t = 0; t < count; t++) out[plane + t] = product[src + t * o + c]!;
      }
    });
  }
}
