import { gelu, geluTanh, leakyRelu, relu, selu, sigmoid } from '../nn/index.js';
import { ACTIVATION_CODES as WASM_ACTIVATION_CODES } from '../nn/wasm/index.js';
import type { Activation } from './plan.js';

/**
 * Fused eval kernels over float64 buffers (the weights are the plan's float32 values, widened
 * once: JavaScript computes in float64, and loading float32 would convert on every use). Activations are applied to
 * each output as it is produced (no second pass, no intermediate tensor). Codes instead of
 * closures keep the inner loops monomorphic.
 */
export const ACTIVATION_CODES: Readonly<Record<Activation['kind'], number>> = WASM_ACTIVATION_CODES;

export const ACT_NONE = ACTIVATION_CODES.none;
const ACT_RELU = ACTIVATION_CODES.relu;
const ACT_LEAKY = ACTIVATION_CODES.leaky_relu;
const ACT_GELU = ACTIVATION_CODES.gelu;
const ACT_GELU_TANH = ACTIVATION_CODES.gelu_tanh;
const ACT_TANH = ACTIVATION_CODES.tanh;
const ACT_SIGMOID = ACTIVATION_CODES.sigmoid;

export function activationCode(a: Activation): number {
  return ACTIVATION_CODES[a.kind];
}

/** The activations of nn/activation-functions.ts, switch-dispatched for the kernels. */
function applyActivation(code: number, slope: number, v: number): number {
  switch (code) {
    case ACT_NONE:
      return v;
    case ACT_RELU:
      return relu(v);
    case ACT_LEAKY:
      return leakyRelu(v, slope);
    case ACT_GELU:
      return gelu(v);
    case ACT_GELU_TANH:
      return geluTanh(v);
    case ACT_TANH:
      return Math.tanh(v);
    case ACT_SIGMOID:
      return sigmoid(v);
    default:
      return selu(v);
  }
}

/**
 * An activation's output as every kernel stores it: the kernel's value rounded to float32 (what
 * PyTorch's layer would have stored), activated, rounded again — so the fused plan keeps float32
 * semantics between layers (values, and overflow to ±Infinity, as in PyTorch) while its buffers
 * are float64 for speed, and a step stored without its activation and activated afterwards (a
 * pre-activation statistics tap) gives the same bits.
 */
export function activate(code: number, slope: number, v: number): number {
  return Math.fround(applyActivation(code, slope, Math.fround(v)));
}

/**
 * out[n, o] = act(b[o] + Σ_i x[n, i]·W[o, i]). Blocked over 2 rows × 4 outputs, so each weight
 * and input load feeds two or four multiply-adds and eight accumulators stay in registers.
 */
export function denseKernel(
  x: Float64Array,
  rows: number,
  inF: number,
  outF: number,
  w: Float64Array,
  b: Float64Array,
  act: number,
  slope: number,
  out: Float64Array,
): void {
  let n = 0;
  for (; n + 2 <= rows; n += 2) {
    const x0 = n * inF;
    const x1 = x0 + inF;
    const y0 = n * outF;
    const y1 = y0 + outF;
    let o = 0;
    for (; o + 4 <= outF; o += 4) {
      const w0 = o * inF;
      const w1 = w0 + inF;
      const w2 = w1 + inF;
      const w3 = w2 + inF;
      let a00 = b[o]!;
      let a01 = b[o + 1]!;
      let a02 = b[o + 2]!;
      let a03 = b[o + 3]!;
      let a10 = a00;
      let a11 = a01;
      let a12 = a02;
      let a13 = a03;
      for (let i = 0; i < inF; i++) {
        const p = x[x0 + i]!;
        const q = x[x1 + i]!;
        const v0 = w[w0 + i]!;
        const v1 = w[w1 + i]!;
        const v2 = w[w2 + i]!;
        const v3 = w[w3 + i]!;
        a00 += p * v0;
        a01 += p * v1;
        a02 += p * v2;
        a03 += p * v3;
        a10 += q * v0;
        a11 += q * v1;
        a12 += q * v2;
        a13 += q * v3;
      }
      out[y0 + o] = activate(act, slope, a00);
      out[y0 + o + 1] = activate(act, slope, a01);
      out[y0 + o + 2] = activate(act, slope, a02);
      out[y0 + o + 3] = activate(act, slope, a03);
      out[y1 + o] = activate(act, slope, a10);
      out[y1 + o + 1] = activate(act, slope, a11);
      out[y1 + o + 2] = activate(act, slope, a12);
      out[y1 + o + 3] = activate(act, slope, a13);
    }
    for (; o < outF; o++) {
      const wo = o * inF;
      let a0 = b[o]!;
      let a1 = a0;
      for (let i = 0; i < inF; i++) {
        a0 += x[x0 + i]! * w[wo + i]!;
        a1 += x[x1 + i]! * w[wo + i]!;
      }
      out[y0 + o] = activate(act, slope, a0);
      out[y1 + o] = activate(act, slope, a1);
    }
  }
  for (; n < rows; n++) {
    const x0 = n * inF;
    const y0 = n * outF;
    let o = 0;
    for (; o + 4 <= outF; o += 4) {
      const w0 = o * inF;
      const w1 = w0 + inF;
      const w2 = w1 + inF;
      const w3 = w2 + inF;
      let a0 = b[o]!;
      let a1 = b[o + 1]!;
      let a2 = b[o + 2]!;
      let a3 = b[o + 3]!;
      for (let i = 0; i < inF; i++) {
        const p = x[x0 + i]!;
        a0 += p * w[w0 + i]!;
        a1 += p * w[w1 + i]!;
        a2 += p * w[w2 + i]!;
        a3 += p * w[w3 + i]!;
      }
      out[y0 + o] = activate(act, slope, a0);
      out[y0 + o + 1] = activate(act, slope, a1);
      out[y0 + o + 2] = activate(act, slope, a2);
      out[y0 + o + 3] = activate(act, slope, a3);
    }
    for (; o < outF; o++) {
      const wo = o * inF;
      let a = b[o]!;
      for (let i = 0; i < inF; i++) a += x[x0 + i]! * w[wo + i]!;
      out[y0 + o] = activate(act, slope, a);
    }
  }
}

/** out[n, c, s] = act(x[n, c, s]·scale[c] + shift[c]) over `channels` runs of `spatial` values. */
export function affineKernel(
  x: Float64Array,
  rows: number,
  channels: number,
  spatial: number,
  scale: Float64Array,
  shift: Float64Array,
  act: number,
  slope: number,
  out: Float64Array,
): void {
  let i = 0;
  for (let n = 0; n < rows; n++) {
    for (let c = 0; c < channels; c++) {
      const sc = scale[c]!;
      const sh = shift[c]!;
      for (let s = 0; s < spatial; s++, i++) out[i] = activate(act, slope, x[i]! * sc + sh);
    }
  }
}

/** LayerNorm of each row with its own mean and biased variance (float64), then the affine and act. */
export function layerNormKernel(
  x: Float64Array,
  rows: number,
  features: number,
  eps: number,
  weight: Float64Array | undefined,
  bias: Float64Array | undefined,
  act: number,
  slope: number,
  out: Float64Array,
): void {
  for (let n = 0; n < rows; n++) {
    const base = n * features;
    let sum = 0;
    for (let k = 0; k < features; k++) sum += x[base + k]!;
    const mean = sum / features;
    let sq = 0;
    for (let k = 0; k < features; k++) {
      const d = x[base + k]! - mean;
      sq += d * d;
    }
    const inv = 1 / Math.sqrt(sq / features + eps);
    for (let k = 0; k < features; k++) {
      const h = (x[base + k]! - mean) * inv;
      out[base + k] = activate(act, slope, weight && bias ? h * weight[k]! + bias[k]! : h);
    }
  }
}

export function activationKernel(
  x: Float64Array,
  count: number,
  act: number,
  slope: number,
  out: Float64Array,
): void {
  for (let i = 0; i < count; i++) out[i] = activate(act, slope, x[i]!);
}
