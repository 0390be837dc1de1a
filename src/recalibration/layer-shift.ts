/** How far recalibration moved one BatchNorm's statistics, averaged over its features. */
export interface LayerShift {
  /** Index of the BatchNorm in the network (of the block holding it, for a nested one). */
  index: number;
  /** The BatchNorm's state-dict prefix: `"5"`, or `"3.body.1"` inside a residual block. */
  path: string;
  features: number;
  /** mean over features of |μ_new − μ_old| / σ_old. */
  mean_shift: number;
  /** mean over features of σ_new / σ_old. */
  std_ratio: number;
}

/**
 * The shift report of one BatchNorm, with σ = √(running_var + ε): ε is included, as in the
 * normalization itself, so that a zero variance (a constant feature) cannot divide by zero.
 */
export function layerShift(
  index: number,
  path: string,
  eps: number,
  oldMean: ArrayLike<number>,
  oldVar: ArrayLike<number>,
  newMean: ArrayLike<number>,
  newVar: ArrayLike<number>,
): LayerShift {
  const features = oldMean.length;
  let meanShift = 0;
  let stdRatio = 0;
  for (let c = 0; c < features; c++) {
    const oldStd = Math.sqrt(oldVar[c]! + eps);
    const newStd = Math.sqrt(newVar[c]! + eps);
    meanShift += Math.abs(newMean[c]! - oldMean[c]!) / oldStd;
    stdRatio += newStd / oldStd;
  }
  return {
    index,
    path,
    features,
    mean_shift: features === 0 ? 0 : meanShift / features,
    std_ratio: features === 0 ? 1 : stdRatio / features,
  };
}
