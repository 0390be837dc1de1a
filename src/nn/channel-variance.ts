/**
 * The unbiased variance M2 / (n − 1) of n values from M2 = Σ(x − mean)² (Bessel's correction,
 * PyTorch's running_var convention); 0 for fewer than two values.
 */
export const unbiasedVariance = (m2: number, count: number): number =>
  count > 1 ? m2 / (count - 1) : 0;

/**
 * M2 = Σ(x − mean_c)² per channel c of `rows` rows of channels × spatial values (a row holds its
 * channels one after another), summed in float64: the second pass of the two-pass variance. Unlike
 * Σx² − mean·Σx, it loses nothing to cancellation when a channel's mean is large against its
 * spread (that form keeps 16 − log10(mean²/variance) of float64's digits).
 */
export function channelM2(
  x: ArrayLike<number>,
  rows: number,
  channels: number,
  spatial: number,
  mean: ArrayLike<number>,
): Float64Array {
  const m2 = new Float64Array(channels);
  let i = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++) {
      const m = mean[c]!;
      let q = m2[c]!;
      for (let k = 0; k < spatial; k++, i++) {
        const d = x[i]! - m;
        q += d * d;
      }
      m2[c] = q;
    }
  }
  return m2;
}
