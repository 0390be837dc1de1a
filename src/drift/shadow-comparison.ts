/** A candidate version against the active one on the same rows (classification outputs). */
export interface ShadowSummary {
  rows: number;
  /** Share of rows where both predict the same class. */
  agreement: number;
  active: { mean_entropy: number; mean_confidence: number };
  candidate: { mean_entropy: number; mean_confidence: number };
}

/**
 * Accumulates agreement, mean prediction entropy (nats) and mean confidence (largest probability)
 * of two versions' class probabilities on the same rows — what can be said about a candidate
 * without labels: a recalibrated model that fits the traffic is usually more confident (lower
 * entropy) than the shifted one, and the agreement tells how many answers it would change.
 */
export class ShadowComparison {
  private rowsSeen = 0;
  private agree = 0;
  private readonly sums = {
    activeEntropy: 0,
    activeConfidence: 0,
    candEntropy: 0,
    candConfidence: 0,
  };

  /** Adds rows of probabilities [rows, classes] of both versions. */
  add(active: Float32Array, candidate: Float32Array, rows: number, classes: number): void {
    for (let r = 0; r < rows; r++) {
      const a = rowSummary(active, r * classes, classes);
      const c = rowSummary(candidate, r * classes, classes);
      if (a.best === c.best) this.agree++;
      this.sums.activeEntropy += a.entropy;
      this.sums.activeConfidence += a.confidence;
      this.sums.candEntropy += c.entropy;
      this.sums.candConfidence += c.confidence;
    }
    this.rowsSeen += rows;
  }

  summary(): ShadowSummary {
    const n = this.rowsSeen;
    const mean = (v: number) => (n === 0 ? 0 : v / n);
    return {
      rows: n,
      agreement: mean(this.agree),
      active: {
        mean_entropy: mean(this.sums.activeEntropy),
        mean_confidence: mean(this.sums.activeConfidence),
      },
      candidate: {
        mean_entropy: mean(this.sums.candEntropy),
        mean_confidence: mean(this.sums.candConfidence),
      },
    };
  }
}

/**
 * One row of class probabilities: its predicted class (the first of equal largest), that
 * probability (the confidence) and the entropy −Σ p·log p in nats.
 */
export function rowSummary(
  p: Float32Array,
  base: number,
  classes: number,
): { best: number; confidence: number; entropy: number } {
  let best = 0;
  let entropy = 0;
  for (let k = 0; k < classes; k++) {
    const v = p[base + k]!;
    if (v > p[base + best]!) best = k;
    if (v > 0) entropy -= v * Math.log(v);
  }
  return { best, confidence: p[base + best]!, entropy };
}
