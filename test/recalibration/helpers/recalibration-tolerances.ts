/**
 * Named tolerances of the recalibration suites, next to test/helpers/tolerances.ts (whose
 * STATS_RTOL the other suites use for accumulated quantities; BatchNorm statistics here use
 * BN_STATISTICS_TOL).
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
/**
 * BatchNorm statistics against a reference (expectStatisticsClose, statistics-close.ts), each
 * error as the change it makes to the layer's normalized output: |Δμ|/√(σ² + ε) (its shift) and
 * |Δσ²|/(σ² + ε) (about twice its relative change). Measured with `BN_STATISTICS_REPORT=1 npx vitest run test/recalibration`, wasm
 * and JS engines: at most 4.3e-6 for a mean (running mode against PyTorch's float32 update_bn on
 * digits-torch; 3.7e-6 exact against the float32-rounded float64 statistics) and 1.3e-6 for a
 * variance; against float64 references at most 4.9e-7 and 3.1e-7. 2e-5 is five times the
 * largest, and above PyTorch's own float32 error (7.8e-6 σ from float64 on 200,000 digits rows,
 * README "Performance"). A mean far from zero in σ units carries the float32 rounding of the
 * stored value (and of PyTorch's), about 2⁻²³·|μ|/σ: the largest errors above are at |μ| = 32 σ
 * (digits-torch's first BatchNorm on the night rows), about one float32 ulp of the mean; a model
 * with means past ~150 σ would need a part relative to |μ| as well. STATS_RTOL (1e-4 relative)
 * judged a mean near zero by itself, where float32 rounding alone exceeded 1e-5.
 */
export const BN_STATISTICS_TOL = 2e-5;
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
