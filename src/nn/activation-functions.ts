import { erf } from './erf.js';

/**
 * Scalar activation functions with PyTorch's definitions, shared by the layers (training and
 * reference eval) and by the fused inference kernels, so both compute the same numbers.
 */

/** SELU constants from Klambauer et al. 2017, as in torch.nn.SELU. */
export const SELU_ALPHA = 1.6732632423543772;
export const SELU_SCALE = 1.0507009873554805;
const SQRT1_2 = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/**
 * torch.relu: x < 0 ? 0 : x, so −0 stays −0 and NaN stays NaN (PyTorch's clamp_min(x, 0) is
 * max(0, x) as the x86 maxps computes it, 0 > x ? 0 : x; Math.max(x, 0) would give +0 for −0).
 */
// biome-ignore lint/complexity/useMathMinMax: Math.max(−0, 0) is +0, torch.relu(−0) is −0.
export const relu = (x: number): number => (x < 0 ? 0 : x);

export const leakyRelu = (x: number, negativeSlope: number): number =>
  x > 0 ? x : x * negativeSlope;

/**
 * Exact GELU: x·Φ(x) = 0.5·x·(1 + erf(x/√2)), + 0: PyTorch 1.13's GELU (oneDNN's gelu_erf on
 * CPU) gives +0 for −0, where 0.5·(−0)·1 is −0; no other value changes.
 */
export const gelu = (x: number): number => 0.5 * x * (1 + erf(x * SQRT1_2)) + 0;

/** GELU with approximate='tanh': 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export const geluTanh = (x: number): number =>
  0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));

/** d/dx of exact GELU: Φ(x) + x·φ(x). */
export const geluGrad = (x: number): number =>
  0.5 * (1 + erf(x * SQRT1_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);

export const geluTanhGrad = (x: number): number => {
  const inner = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
  const t = Math.tanh(inner);
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
};

/** Logistic sigmoid, evaluated without overflow for large |x|. */
export const sigmoid = (x: number): number => {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
};

/**
 * SELU: scale·(max(0, x) + min(0, α·(eˣ − 1))). selu(−0) is +0, as PyTorch's (its elu kernel
 * computes (eˣ − 1)·α·scale, and e^−0 − 1 is +0; so is it for x > −2⁻²⁵, where eˣ rounds to 1 in
 * float32 — there this keeps expm1's −1.76·|x|, docs/signed-zeros.md).
 */
export const selu = (x: number): number =>
  x > 0 ? SELU_SCALE * x : SELU_SCALE * SELU_ALPHA * Math.expm1(x) + 0;
