/**
 * BatchNorm statistics against reference ones, each error weighed by what it does to the layer's
 * output: eval mode computes (x − μ)/√(σ² + ε), so a mean error Δμ moves every normalized value by
 * Δμ/√(σ² + ε) of its unit, and a variance error scales them by 1/√(1 + Δσ²/(σ² + ε)), i.e. by
 * about Δσ²/(2(σ² + ε)) relative (test/recalibration/statistics-close.test.ts). The ratios
 * |Δμ|/√(σ² + ε) and |Δσ²|/(σ² + ε) are dimensionless and bounded by BN_STATISTICS_TOL: a
 * running mean near zero is judged against its channel's spread (a relative tolerance on the mean
 * itself fails there on float32 rounding alone), and a variance far below ε can only move the
 * output as much as ε lets it.
 */
import { expect } from 'vitest';
import { BN_STATISTICS_TOL } from './recalibration-tolerances.js';

/** The largest errors seen (BN_STATISTICS_REPORT=1 prints them per call): how the tolerance was measured. */
const report = process.env.BN_STATISTICS_REPORT === '1';

export function expectStatisticsClose(
  actual: { mean: ArrayLike<number>; variance: ArrayLike<number> },
  expected: { mean: ArrayLike<number>; variance: ArrayLike<number> },
  eps: number,
  what: string,
  tol = BN_STATISTICS_TOL,
): void {
  const channels = expected.mean.length;
  expect(actual.mean.length, `${what}: mean length`).toBe(channels);
  expect(actual.variance.length, `${what}: variance length`).toBe(channels);
  expect(expected.variance.length, `${what}: expected variance length`).toBe(channels);
  let worstMean = 0;
  let worstVariance = 0;
  let farthest = 0;
  for (let c = 0; c < channels; c++) {
    const scale = expected.variance[c]! + eps;
    const meanError = Math.abs(actual.mean[c]! - expected.mean[c]!) / Math.sqrt(scale);
    const varianceError = Math.abs(actual.variance[c]! - expected.variance[c]!) / scale;
    worstMean = Math.max(worstMean, meanError);
    worstVariance = Math.max(worstVariance, varianceError);
    farthest = Math.max(farthest, Math.abs(expected.mean[c]!) / Math.sqrt(scale));
    expect(
      meanError,
      `${what}.mean[${c}]: ${actual.mean[c]} vs ${expected.mean[c]} (σ² ${expected.variance[c]})`,
    ).toBeLessThanOrEqual(tol);
    expect(
      varianceError,
      `${what}.var[${c}]: ${actual.variance[c]} vs ${expected.variance[c]}`,
    ).toBeLessThanOrEqual(tol);
  }
  if (report)
    console.log(
      `@@ ${what}: mean ${worstMean.toExponential(2)} var ${worstVariance.toExponential(2)}, |μ| up to ${farthest.toFixed(1)} σ`,
    );
}
