/**
 * The formulas of test/recalibration/helpers/statistics-close.ts, checked against what eval mode
 * computes: a running-mean error Δμ moves every normalized value by Δμ/√(σ² + ε), a running-var
 * error Δσ² scales them by 1/√(1 + Δσ²/(σ² + ε)); and the helper's bound on both ratios.
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm1d, Tensor } from '../../src/nn/index.js';
import { BN_STATISTICS_TOL } from './helpers/recalibration-tolerances.js';
import { expectStatisticsClose } from './helpers/statistics-close.js';

const EPS = 1e-5;
const X = [-5, 0, 1, 7, 11];
/** Float32 rounding of normalized values of a few units. */
const FLOAT32_OUTPUT_TOL = 1e-6;

/** Eval-mode outputs of a BatchNorm1d without affine on X, with the running statistics given. */
function normalized(mean: number, variance: number): Float32Array {
  const bn = new BatchNorm1d({ numFeatures: 1, eps: EPS, affine: false });
  bn.runningMean.data[0] = mean;
  bn.runningVar.data[0] = variance;
  bn.eval();
  return bn.forward(Tensor.from(X, [X.length, 1])).data;
}

describe('expectStatisticsClose', () => {
  const mean = 3;
  const variance = 4;

  it('a mean error Δμ moves every normalized value by Δμ/√(σ² + ε)', () => {
    const dMean = 0.25;
    const before = normalized(mean, variance);
    const after = normalized(mean + dMean, variance);
    for (let i = 0; i < X.length; i++)
      expect(Math.abs(after[i]! - before[i]! + dMean / Math.sqrt(variance + EPS))).toBeLessThan(
        FLOAT32_OUTPUT_TOL,
      );
  });

  it('a variance error Δσ² scales the normalized values by 1/√(1 + Δσ²/(σ² + ε))', () => {
    const dVariance = 2;
    const factor = 1 / Math.sqrt(1 + dVariance / (variance + EPS));
    const before = normalized(mean, variance);
    const after = normalized(mean, variance + dVariance);
    for (let i = 0; i < X.length; i++)
      expect(Math.abs(after[i]! - before[i]! * factor)).toBeLessThan(FLOAT32_OUTPUT_TOL);
  });

  it('bounds |Δμ|/√(σ² + ε) and |Δσ²|/(σ² + ε) by the tolerance, on every channel', () => {
    // A channel near zero, one far from it, one whose variance is far below ε.
    const expected = { mean: [0, 100, -2], variance: [1, 4, 1e-9] };
    const scale = expected.variance.map((v) => v + EPS);
    const shifted = (k: number, which: 'mean' | 'variance', c: number) => {
      const actual = { mean: [...expected.mean], variance: [...expected.variance] };
      const error =
        which === 'mean'
          ? k * BN_STATISTICS_TOL * Math.sqrt(scale[c]!)
          : k * BN_STATISTICS_TOL * scale[c]!;
      actual[which][c]! += error;
      return actual;
    };
    for (let c = 0; c < 3; c++) {
      for (const which of ['mean', 'variance'] as const) {
        expect(() =>
          expectStatisticsClose(shifted(0.9, which, c), expected, EPS, 'x'),
        ).not.toThrow();
        expect(() =>
          expectStatisticsClose(shifted(-0.9, which, c), expected, EPS, 'x'),
        ).not.toThrow();
        expect(() => expectStatisticsClose(shifted(1.1, which, c), expected, EPS, 'x')).toThrow();
        expect(() => expectStatisticsClose(shifted(-1.1, which, c), expected, EPS, 'x')).toThrow();
      }
    }
  });
});
