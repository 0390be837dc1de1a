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
): void {
  const [kh, kw] = g.kernel;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const [dh, dw] = g.dilation;
  const { channels, inH, inW, outH, outW } = g;
  const k = channels * kh * kw;
  let at = rowOffset * k;
  for (let oh = 0; oh < outH; oh++) {
    const h0 = oh * sh - ph;
    for (let ow = 0; ow < outW; ow++) {
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
    }
  }
}
