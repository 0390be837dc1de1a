import { adaptiveWindow, type WindowGeometry } from './conv-geometry.js';
import type { FloatArray } from './im2col.js';

/**
 * The input window of every output position of a pooling layer, clipped to the input (padding
 * never contributes a value: −∞ for max, 0 for the mean), and the divisor of the mean. Computed
 * once per layer and input size; the pooling layers, their backward passes and the compiled plan
 * all read the same table.
 */
export interface PoolWindows {
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  /** Per output position p = oh·W_out + ow: rows [h0, h1) and columns [w0, w1) of the input. */
  h0: Int32Array;
  h1: Int32Array;
  w0: Int32Array;
  w1: Int32Array;
  /** What the window's sum is divided by (mean pooling). */
  divisor: Float64Array;
}

function table(inH: number, inW: number, outH: number, outW: number): PoolWindows {
  const p = outH * outW;
  return {
    inH,
    inW,
    outH,
    outW,
    h0: new Int32Array(p),
    h1: new Int32Array(p),
    w0: new Int32Array(p),
    w1: new Int32Array(p),
    divisor: new Float64Array(p),
  };
}

/**
 * Windows of MaxPool2d/AvgPool2d (dilation 1, ceil_mode=False), after ATen's avg_pool2d
 * (aten/src/ATen/native/cpu/AvgPoolKernel.cpp): the window starts at o·stride − padding and
 * spans the kernel; the divisor is the window size inside the padded input when
 * count_include_pad, else the number of real input elements in it.
 */
export function poolWindows(g: WindowGeometry, countIncludePad: boolean): PoolWindows {
  const w = table(g.inH, g.inW, g.outH, g.outW);
  const [kh, kw] = g.kernel;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  for (let oh = 0; oh < g.outH; oh++) {
    for (let ow = 0; ow < g.outW; ow++) {
      const p = oh * g.outW + ow;
      let hs = oh * sh - ph;
      let ws = ow * sw - pw;
      let he = Math.min(hs + kh, g.inH + ph);
      let we = Math.min(ws + kw, g.inW + pw);
      const padded = (he - hs) * (we - ws);
      hs = Math.max(hs, 0);
      ws = Math.max(ws, 0);
      he = Math.min(he, g.inH);
      we = Math.min(we, g.inW);
      w.h0[p] = hs;
      w.h1[p] = he;
      w.w0[p] = ws;
      w.w1[p] = we;
      w.divisor[p] = countIncludePad ? padded : (he - hs) * (we - ws);
    }
  }
  return w;
}

/** Windows of AdaptiveAvgPool2d: [⌊o·in/out⌋, ⌈(o + 1)·in/out⌉) per dimension. */
export function adaptivePoolWindows(
  inH: number,
  inW: number,
  outH: number,
  outW: number,
): PoolWindows {
  const w = table(inH, inW, outH, outW);
  for (let oh = 0; oh < outH; oh++) {
    const [hs, he] = adaptiveWindow(oh, inH, outH);
    for (let ow = 0; ow < outW; ow++) {
      const [ws, we] = adaptiveWindow(ow, inW, outW);
      const p = oh * outW + ow;
      w.h0[p] = hs;
      w.h1[p] = he;
      w.w0[p] = ws;
      w.w1[p] = we;
      w.divisor[p] = (he - hs) * (we - ws);
    }
  }
  return w;
}

/**
 * Max over each window, per sample and channel ([rows·channels] planes of inH×inW). A NaN wins,
 * as in ATen (`val > max || isnan(val)`); `argmax`, if given, gets the input index of each output.
 */
export function maxPoolKernel(
  x: FloatArray,
  planes: number,
  win: PoolWindows,
  out: FloatArray,
  argmax?: Int32Array,
): void {
  const inPlane = win.inH * win.inW;
  const p = win.outH * win.outW;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * inPlane;
    for (let q = 0; q < p; q++) {
      let best = Number.NEGATIVE_INFINITY;
      let at = -1;
      for (let h = win.h0[q]!; h < win.h1[q]!; h++) {
        const line = base + h * win.inW;
        for (let w = win.w0[q]!; w < win.w1[q]!; w++) {
          const v = x[line + w]!;
          if (v > best || Number.isNaN(v)) {
            best = v;
            at = line + w;
          }
        }
      }
      out[plane * p + q] = best;
      if (argmax) argmax[plane * p + q] = at;
    }
  }
}

/** Mean over each window (sum in float64, divided by the window's divisor, stored as float32). */
export function meanPoolKernel(
  x: FloatArray,
  planes: number,
  win: PoolWindows,
  out: FloatArray,
): void {
  const inPlane = win.inH * win.inW;
  const p = win.outH * win.outW;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * inPlane;
    for (let q = 0; q < p; q++) {
      let sum = 0;
      for (let h = win.h0[q]!; h < win.h1[q]!; h++) {
        const line = base + h * win.inW;
        for (let w = win.w0[q]!; w < win.w1[q]!; w++) sum += x[line + w]!;
      }
      out[plane * p + q] = Math.fround(sum / win.divisor[q]!);
    }
  }
}

/** Backward of meanPoolKernel: each input of a window gets dy / divisor. */
export function meanPoolBackward(
  dy: FloatArray,
  planes: number,
  win: PoolWindows,
  dx: Float64Array,
): void {
  const inPlane = win.inH * win.inW;
  const p = win.outH * win.outW;
  for (let plane = 0; plane < planes; plane++) {
    const base = plane * inPlane;
    for (let q = 0; q < p; q++) {
      const g = dy[plane * p + q]! / win.divisor[q]!;
      for (let h = win.h0[q]!; h < win.h1[q]!; h++) {
        const line = base + h * win.inW;
        for (let w = win.w0[q]!; w < win.w1[q]!; w++) dx[line + w] = dx[line + w]! + g;
      }
    }
  }
}
