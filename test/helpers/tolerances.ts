/**
 * Named tolerances for numerical comparisons. PyTorch computes in float32; we store float32 and
 * accumulate in float64, so outputs agree to a few float32 ulps.
 */
/** Layer and model outputs against PyTorch: absolute. */
export const OUTPUT_ATOL = 1e-5;
/**
 * Outputs of magnitude ≲ 1 against PyTorch (both float32 storage, a few roundings apart: 1 ulp of
 * 0.5 is 6e-8): absolute. Measured 6e-8 on every-layer-torch, unfused and fused.
 */
export const UNIT_OUTPUT_ATOL = 1e-6;
/** Running statistics and other accumulated quantities against PyTorch: relative. */
export const STATS_RTOL = 1e-4;
/**
 * A loss against PyTorch's float32 one (float32 inputs, float64 sums here): relative. Measured
 * 1.1e-7 on the loss goldens, 1.7e-7 per step and 5e-8 per epoch on the training-loop goldens.
 */
export const LOSS_RTOL = 1e-6;
/** Parameters after optimizer steps against PyTorch: absolute. */
export const PARAM_ATOL = 1e-6;
/**
 * Parameters after each of a few optimizer steps against PyTorch (|θ| ≲ 1): absolute, 4 float32
 * ulps at 0.5, 2 at 1. Measured 1.2e-7 over the optimizer goldens' 5 steps, 1.8e-7 after the
 * training-loop goldens' 8 and 9 steps of train() (the README's "within 2.5e-7").
 */
export const OPTIMIZER_STEP_ATOL = 2.5e-7;
/**
 * Learning rates against PyTorch's schedulers (both double arithmetic; PyTorch's recursive cosine
 * drifts by a few double ulps): relative.
 */
export const LR_RTOL = 1e-12;
/**
 * The committed models (models/digits, models/digits-cnn) against PyTorch's evaluation of the same
 * files (tools/torch-eval-model.py), logits up to 8.3: absolute. Measured 1.4e-6 (digits) and
 * 3.4e-6 (digits-cnn, fused; 2.9e-6 unfused), 3.5 float32 ulps at 8.
 */
export const BUNDLED_LOGITS_ATOL = 1e-5;
/** Fused (folded) vs unfused eval outputs: absolute. */
export const FUSION_ATOL = 1e-4;
/** A row predicted inside a batch vs alone: absolute. */
export const BATCH_INDEPENDENCE_ATOL = 1e-6;
/** Finite-difference gradient checks (central differences in float64 on a float32 engine): relative. */
export const GRADCHECK_RTOL = 2e-2;
/** Fused vs unfused eval outputs of a regression in its target's units (e.g. grams): relative. */
export const FUSION_RTOL = 1e-5;
/**
 * The WebAssembly engine's float32 activations against nn's float64 functions rounded to float32:
 * float32 ulps of the reference (GELU's erfc tail and the rest from fdlibm/Cephes polynomials).
 */
export const ACTIVATION_ULPS = {
  relu: 0,
  leaky_relu: 1,
  tanh: 2,
  sigmoid: 2,
  selu: 2,
  gelu: 4,
} as const;
/**
 * GELU(tanh) in float32: relative. In the negative tail x·σ(2u) inherits the rounding of u times
 * |2u| (≈ 40 ulps at x ≈ −5.5, where the output is ≈ 1e-7 of |x|), as any float32 evaluation does.
 */
export const GELU_TANH_RTOL = 4e-6;

/** One unit in the last place of a float32 value (subnormal spacing below the normal range). */
export function float32Ulp(v: number): number {
  const a = Math.abs(v);
  if (a < 1.17549435e-38) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/**
 * The WebAssembly engine's softmax against nn's float64 one: each probability within
 * SOFTMAX_ULPS float32 ulps of the reference — expf within 1 ulp, the result's rounding, and the
 * other values' errors reaching it through the float64 sum (≈ 2·2⁻²⁴ relative at 40 classes) —
 * plus the float32 rounding of its own x − max before the exponential (as PyTorch rounds it).
 */
export const SOFTMAX_ULPS = 3;

/** Float64 statistics sums of the same values added in another grouping (collected at other times). */
export const FLOAT64_REGROUP_RTOL = 1e-12;
