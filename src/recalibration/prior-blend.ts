/**
 * Schneider et al. 2020 ("Improving robustness against common corruptions by covariate shift
 * adaptation", eq. 2): with a prior strength N ≥ 0 (in rows) and n target rows,
 *   μ = (N·μ_source + n·μ_target) / (N + n),  σ² = (N·σ²_source + n·σ²_target) / (N + n).
 * Written as target + w·(source − target), w = N/(N + n), which is the same blend but gives the
 * target statistics bit for bit at N = 0 (plain `exact`) and the source ones as N → ∞.
 */
export function blendStatistics(
  source: ArrayLike<number>,
  target: Float64Array,
  priorStrength: number,
  n: number,
): Float64Array {
  const w = priorStrength / (priorStrength + n);
  return target.map((t, c) => t + w * (source[c]! - t));
}
