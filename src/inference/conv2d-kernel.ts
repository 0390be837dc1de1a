import { im2col, im2colWidth } from '../nn/index.js';
import { denseKernel } from './kernels.js';
import type { Conv2dStep } from './plan.js';

/** Rows of im2col per GEMM: bounds the scratch memory whatever the batch size. */
export const CONV_GEMM_ROWS = 4096;

/** A conv step with its parameters widened to float64 for the kernels. */
export interface WideConv2dStep extends Omit<Conv2dStep, 'weight' | 'bias'> {
  weight: Float64Array;
  bias: Float64Array;
}

/** Samples per GEMM of a conv step, and the scratch (im2col rows, GEMM output) it needs. */
export function conv2dScratch(step: Pick<Conv2dStep, 'geometry' | 'outChannels'>): {
  samples: number;
  cols: number;
  product: number;
} {
  const p = step.geometry.outH * step.geometry.outW;
  const samples = Math.max(1, Math.floor(CONV_GEMM_ROWS / p));
  return {
    samples,
    cols: samples * p * im2colWidth(step.geometry),
    product: samples * p * step.outChannels,
  };
}

/**
 * A convolution as im2col + the dense GEMM kernel, a chunk of samples at a time: the windows of
 * each sample become rows of `cols` [H_out·W_out, C·kh·kw], denseKernel computes
 * act(cols · Wᵀ + b) into `product` [H_out·W_out, out] (bias, activation and float32 rounding in
 * its epilogue), and the rows are transposed into the [out, H_out, W_out] layout of each sample.
 */
export function conv2dKernel(
  x: Float64Array,
  rows: number,
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
  const { samples } = conv2dScratch(step);
  for (let first = 0; first < rows; first += samples) {
    const n = Math.min(samples, rows - first);
    for (let s = 0; s < n; s++) im2col(x, (first + s) * inSize, g, cols, s * p);
    denseKernel(cols, n * p, k, o, step.weight, step.bias, act, slope, product);
    for (let s = 0; s < n; s++) {
      const dst = (first + s) * outSize;
      const src = s * p * o;
      for (let c = 0; c < o; c++) {
        const plane = dst + c * p;
        for (let q = 0; q < p; q++) out[plane + q] = product[src + q * o + c]!;
      }
    }
  }
}
