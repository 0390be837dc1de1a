/**
 * Named tolerances for the gradient checks and for statistical facts about random layers and the
 * RNG. The statistical ones are loose on purpose (several standard errors wide for the sample sizes
 * used), so a correct implementation essentially never fails them while a wrong scale or rate does.
 */

/** Central finite-difference step on float32 values: big enough to dwarf float32 rounding. */
export const GRADCHECK_STEP = 1e-3;
/**
 * Gradients are compared relatively (GRADCHECK_RTOL) against max(|analytic|, |numeric|, floor):
 * below this magnitude the float32 rounding of the objective, divided by the step, dominates.
 */
export const GRADCHECK_ABS_FLOOR = 1e-2;
/** Smallest |x| an input to a kinked activation (ReLU, LeakyReLU, SELU) may have: ≫ the step. */
export const KINK_MARGIN = 0.1;

/** Empirical keep rate of Dropout over ~1e5 elements vs 1 − p (standard error ≈ 1.5e-3). */
export const DROPOUT_KEEP_RATE_ATOL = 1e-2;
/** Sample mean and variance of AlphaDropout's output over ~2e5 standard normal inputs. */
export const ALPHA_DROPOUT_MOMENT_ATOL = 3e-2;
/** Sample mean and variance of Rng.normal() over ~1e5 draws. */
export const RNG_NORMAL_MOMENT_ATOL = 2e-2;
/**
 * χ² bound for the counts of Rng.int(10) over 1e5 draws (9 degrees of freedom): the 1 − 1e-6
 * quantile is about 47, so a uniform generator stays below it.
 */
export const RNG_CHI_SQUARE_MAX_DF9 = 47;
