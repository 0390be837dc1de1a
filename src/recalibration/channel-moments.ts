import { unbiasedVariance } from '../nn/index.js';

/**
 * Per-channel count, mean and M2 = Σ(x − mean)² in float64, merged chunk by chunk with the
 * pairwise update of Chan, Golub & LeVeque ("Updating formulae and a pairwise algorithm for
 * computing sample variances", 1979), the batch form of Welford's (1962) running variance:
 *   δ = mean_B − mean_A, n = n_A + n_B,
 *   mean = mean_A + δ·n_B/n,  M2 = M2_A + M2_B + δ²·n_A·n_B/n.
 * Each chunk's (mean, M2) comes from the executor's float64 sums of that chunk
 * (LayerInputStatistics), so the result does not depend on how the rows were chunked (up to
 * float64 rounding).
 */
export class ChannelMoments {
  count = 0;
  readonly mean: Float64Array;
  readonly m2: Float64Array;

  constructor(channels: number) {
    this.mean = new Float64Array(channels);
    this.m2 = new Float64Array(channels);
  }

  /** Merges a chunk's moments in (its arrays are only read). */
  add(chunk: { count: number; mean: ArrayLike<number>; m2: ArrayLike<number> }): void {
    const nB = chunk.count;
    if (nB === 0) return;
    const nA = this.count;
    const n = nA + nB;
    for (let c = 0; c < this.mean.length; c++) {
      const delta = chunk.mean[c]! - this.mean[c]!;
      this.mean[c] = this.mean[c]! + (delta * nB) / n;
      this.m2[c] = this.m2[c]! + chunk.m2[c]! + (delta * delta * nA * nB) / n;
    }
    this.count = n;
  }

  /** Back to no values (the arrays are kept). */
  reset(): void {
    this.count = 0;
    this.mean.fill(0);
    this.m2.fill(0);
  }

  /** The unbiased variance M2 / (n − 1), PyTorch's convention for running_var (needs n ≥ 2). */
  unbiasedVariance(): Float64Array {
    return this.m2.map((m2) => unbiasedVariance(m2, this.count));
  }
}
