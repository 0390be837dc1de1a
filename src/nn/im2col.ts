import type { WindowGeometry } from './conv-geometry.js';

/** Float storage a kernel reads: nn tensors are Float32Array, the inference buffers Float64Array. */
export type FloatArray = Float32Array | Float64Array;

/** Columns of one im2col row: C·kh·kw, in the order of a Conv2d weight [out, C, kh, kw] row. */
export const im2colWidth = (g: WindowGeometry): number => g.channels * g.kernel[0] * g.kernel[1];

/**
 * im2col of one sample [C, H, W] (at `x[xOffset]`): writes the rows of output positions `first`,
 * …, `first + count − 1` (all H_out·W_out by default) of C·kh·kw values each to `cols` from row
 * `rowOffset` on, row p = oh·W_out + ow holding the window under output (oh, ow), zeros where it
 * reaches into the padding. A convolution is then the matrix product cols · Wᵀ with W = weight as
 * [out, C·kh·kw] (row-major): one GEMM for every layer type. A range of positions lets a caller
 * lay out a bounded block of rows at a time, whatever the image size (inference/conv2d-kernel.ts).
 */
export function im2col(
  x: FloatArray,
  xOffset: number,
  g: WindowGeometry,
  cols: FloatArray,
  rowOffset: number,
  first = 0,
  count = g.outH * g.outW - first,
): void {
  const [kh, kw] = g.kernel;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const [dh, dw] = g.dilation;
  const { channels, inH, inW, outW } = g;
  const k = channels * kh * kw;
  let at = rowOffset * k;
  let oh = Math.floor(first / outW);
  let ow = first - oh * outW;
  for (let r = 0; r < count; r++) {
    const h0 = oh * sh - ph;
    const w0 = ow * sw - pw;
    for (let c = 0; c < channels; c++) {
      const plane = xOffset + c * inH * inW;
      for (let i = 0; i < kh; i++) {
        const ih = h0 + i * dh;
        if (ih < 0 || ih >= inH) {
          for (let j = 0; j < kw; j++) cols[at++] = 0;
          continue;
        }
        const line = plane + ih * inW;
        for (let j = 0; j < kw; j++) {
          const iw = w0 + j * dw;
          cols[at++] = iw >= 0 && iw < inW ? x[line + iw]! : 0;
        }
      }
    }
    if (++ow === outW) {
      ow = 0;
      oh++;
    }
  }
}

/** The adjoint of im2col: adds each column value back to the input element it was read from. */
export function col2imAdd(
  cols: FloatArray,
  rowOffset: number,
  g: WindowGeometry,
  dx: Float64Array,
  xOffset: number,
  first = 0,
  count = g.outH * g.outW - first,
): void {
  const [kh, kw] = g.kernel;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const [dh, dw] = g.dilation;
  const { channels, inH, inW, outW } = g;
  const k = channels * kh * kw;
  let at = rowOffset * k;
  let oh = Math.floor(first / outW);
  let ow = first - oh * outW;
  for (let r = 0; r < count; r++) {
    const h0 = oh * sh - ph;
    const w0 = ow * sw - pw;
    for (let c = 0; c < channels; c++) {
      const plane = xOffset + c * inH * inW;
      for (let i = 0; i < kh; i++) {
        const ih = h0 + i * dh;
        if (ih < 0 || ih >= inH) {
          at += kw;
          continue;
        }
        const line = plane + ih * inW;
        for (let j = 0; j < kw; j++) {
          const iw = w0 + j * dw;
          if (iw >= 0 && iw < inW) dx[line + iw] = dx[line + iw]! + cols[at]!;
          at++;
        }
      }
    }
    if (++ow === outW) {
      ow = 0;
      oh++;
    }
  }
}

/**
 * The most values of a block's im2col rows, and of its product with the weight, a convolution
 * lays out at a time where its rows are independent (eval forward, training's input gradient):
 * 2^18, 2 MiB as float64, unless one row alone is longer.
 */
export const IM2COL_BLOCK_VALUES = 2 ** 18;

/**
 * Rows (output positions) per block of a convolution with rows of `width` = C·kh·kw values and
 * `outChannels` outputs: at least one, else as many as keep both the block's windows and its
 * products within IM2COL_BLOCK_VALUES — bounded by the layer's widths, not the image or batch size.
 */
export const im2colBlockRows = (width: number, outChannels: number): number =>
  Math.max(1, Math.floor(IM2COL_BLOCK_VALUES / Math.max(width, outChannels)));

/**
 * Calls f(sample, position, count, row) for each run of one sample's output positions among
 * rows [start, end) of a batch's N·P rows (row = sample·P + position): `row` is the run's first
 * row counted from `start`. A block of rows may begin and end inside a sample or span several.
 */
export function forEachSampleRun(
  start: number,
  end: number,
  positions: number,
  f: (sample: number, position: number, count: number, row: number) => void,
): void {
  for (let r = start; r < end; ) {
    const sample = Math.floor(r / positions);
    const position = r - sample * positions;
    const count = Math.min(positions - position, end - r);
    f(sample, position, count, r - start);
    r += count;
  }
}
