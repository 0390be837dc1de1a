/**
 * Named tolerances of the recalibration suites, next to test/helpers/tolerances.ts (whose
 * STATS_RTOL is used against PyTorch).
 */

/**
 * The same statistics accumulated in different chunkings: the float64 sums differ only in
 * rounding order (~1e-15), so the float32 values stored differ by at most an ulp or two.
 */
export const CHUNKING_RTOL = 1e-6;
/** `prior` with a huge prior strength (N = 1e12 rows against 360) keeps the source statistics. */
export const PRIOR_SOURCE_RTOL = 1e-6;
/**
 * `running` mode against a float64 re-computation: the engine averages batch after batch in
 * float32 buffers (as PyTorch does), a few float32 roundings per step.
 */
export const CUMULATIVE_AVERAGE_RTOL = 1e-5;
/** The shift report on a hand-built case, from float32-stored statistics. */
export const SHIFT_REPORT_RTOL = 1e-6;
/** Accuracy may drop at most this much from clean after recalibration on the night rows. */
export const RECALIBRATED_ACCURACY_MARGIN = 0.01;
/** The night shift must really hurt the bundled model for the recalibration test to mean anything. */
export const NIGHT_ACCURACY_MAX = 0.75;
/**
 * A known input shift δ on every pixel moves the first BatchNorm's mean by δ·W·scale and leaves
 * its variance alone, up to the float32 rounding of the shifted pixels and of the Linear's
 * outputs (measured: 2.5e-6 σ for the means, 1.7e-7 relative for the variances).
 */
export const INPUT_SHIFT_RTOL = 1e-5;
