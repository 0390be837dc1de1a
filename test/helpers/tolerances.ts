/**
 * Named tolerances for numerical comparisons. PyTorch computes in float32; we store float32 and
 * accumulate in float64, so outputs agree to a few float32 ulps.
 */
/** Layer and model outputs against PyTorch: absolute. */
export const OUTPUT_ATOL = 1e-5;
/** Running statistics and other accumulated quantities against PyTorch: relative. */
export const STATS_RTOL = 1e-4;
/** Parameters after optimizer steps against PyTorch: absolute. */
export const PARAM_ATOL = 1e-6;
/** Fused (folded) vs unfused eval outputs: absolute. */
export const FUSION_ATOL = 1e-4;
/** A row predicted inside a batch vs alone: absolute. */
export const BATCH_INDEPENDENCE_ATOL = 1e-6;
/** Finite-difference gradient checks (central differences in float64 on a float32 engine): relative. */
export const GRADCHECK_RTOL = 2e-2;
/** Fused vs unfused eval outputs of a regression in its target's units (e.g. grams): relative. */
export const FUSION_RTOL = 1e-5;
