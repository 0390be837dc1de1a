import type { LiveMoments } from './layer-drift.js';
import { selectInPlace } from './order-statistics.js';

/**
 * Bound of the screening of a traffic sample, in robust standard deviations of the sample itself
 * (docs/drift.md, "Outlying rows"): a row is outlying when one of its features lies more than
 * OUTLIER_BOUND · σ̂ from the sample's median. Of the bundled models' 1,797 digits rows, clean or
 * night-shifted, none lies beyond 9.8 (test/drift/outlying-rows.test.ts checks none beyond the
 * bound), while m kept rows among n move a channel's mean by at most bound·m/n robust deviations
 * and add about bound²·m/n σ̂² to its variance: 3 rows at the bound in a sample of 512, 0.07 σ̂
 * and 0.84 σ̂².
 */
export const OUTLIER_BOUND = 12;

/** 1/Φ⁻¹(3/4): the MAD of a normal distribution times this is its standard deviation. */
export const MAD_TO_SIGMA = 1.482602218505602;

/**
 * The robust scale's floor, as a share of the layer's running σ = √(running_var + ε): a feature
 * nearly constant over the sample (MAD ≈ 0) would otherwise make every small difference outlying.
 */
export const SCALE_FLOOR = 0.05;

/**
 * Per-row features of one BatchNorm's inputs over a sample: for row r and channel c, the mean a of
 * the layer's N·H·W values of that row (BatchNorm1d: the value) and, when H·W > 1, their root mean
 * square deviation s = √(mean (x − a)²) — so that a row whose values are extreme but average out
 * (±1e4 alternating) is seen too. From a and s the row's Σx = HW·a and Σx² = HW·(s² + a²) follow,
 * which is what the layer's statistics sum: bounding a and s bounds the row's influence on them.
 */
export class LayerRowFeatures {
  /** [rows, channels]: per row and channel, the mean of the row's values. */
  readonly mean: Float64Array;
  /** [rows, channels]: their root mean square deviation from it (0 when spatial is 1). */
  readonly spread: Float64Array;

  constructor(
    readonly rows: number,
    readonly channels: number,
    readonly spatial: number,
  ) {
    this.mean = new Float64Array(rows * channels);
    this.spread = new Float64Array(rows * channels);
  }

  /** Reads rows from … from+n−1 of the layer's inputs, `values` [n, channels, spatial]. */
  add(from: number, n: number, values: ArrayLike<number>): void {
    const { channels, spatial } = this;
    for (let r = 0; r < n; r++)
      for (let c = 0; c < channels; c++) {
        const base = (r * channels + c) * spatial;
        let sum = 0;
        for (let i = 0; i < spatial; i++) sum += values[base + i]!;
        const a = sum / spatial;
        let m2 = 0;
        for (let i = 0; i < spatial; i++) {
          const d = values[base + i]! - a;
          m2 += d * d;
        }
        this.mean[(from + r) * channels + c] = a;
        this.spread[(from + r) * channels + c] = Math.sqrt(m2 / spatial);
      }
  }
}

/**
 * How far each row lies from the bulk of the sample: D_r = max over layers ℓ, channels c and
 * features f (the mean, and for a BatchNorm2d the spread) of |f_rℓc − med_ℓc| / σ̂_ℓc with
 * σ̂ = max(MAD_TO_SIGMA · median|f − med|, SCALE_FLOOR · √(running_var_c + ε)). Median and MAD
 * are the bounded-influence estimates of centre and scale (breakdown point 1/2: fewer than half
 * the rows, wherever they are, cannot move them arbitrarily), so a handful of absurd rows cannot
 * hide themselves by widening the scale they are judged by, as they would a mean and a standard
 * deviation.
 */
export function rowOutlyingness(
  layers: readonly { features: LayerRowFeatures; runningVar: ArrayLike<number>; eps: number }[],
  rows: number,
): Float64Array {
  const distance = new Float64Array(rows);
  const column = new Float64Array(rows);
  for (const { features, runningVar, eps } of layers) {
    const { channels, spatial } = features;
    const kinds = spatial > 1 ? [features.mean, features.spread] : [features.mean];
    for (const values of kinds)
      for (let c = 0; c < channels; c++) {
        for (let r = 0; r < rows; r++) column[r] = values[r * channels + c]!;
        const centre = median(column);
        for (let r = 0; r < rows; r++) column[r] = Math.abs(values[r * channels + c]! - centre);
        const scale = Math.max(
          MAD_TO_SIGMA * median(column),
          SCALE_FLOOR * Math.sqrt(runningVar[c]! + eps),
        );
        for (let r = 0; r < rows; r++) {
          const d = Math.abs(values[r * channels + c]! - centre) / scale;
          // NaN (a value that is not finite) counts as infinitely far.
          distance[r] = d <= distance[r]! ? distance[r]! : Number.isNaN(d) ? Infinity : d;
        }
      }
  }
  return distance;
}

/** The median of `a` (reordered in place; the mean of the two middle values for an even count). */
export function median(a: Float64Array): number {
  const n = a.length;
  if (n === 0) return Number.NaN;
  const upper = selectInPlace(a, n >> 1);
  if (n % 2 === 1) return upper;
  // After the selection every element before n/2 is ≤ a[n/2]: the lower middle is their largest.
  let lower = -Infinity;
  for (let i = 0; i < n >> 1; i++) if (a[i]! > lower) lower = a[i]!;
  return (lower + upper) / 2;
}

/**
 * One layer's moments over the rows `kept` (count, mean and M2 per channel, float64), from the
 * rows' features: with HW values per row and channel, the M2 of the union is the within-row part
 * Σ_r HW·s_r² plus the between-row part Σ_r HW·(a_r − mean)² — the exact decomposition, without
 * the cancellation of Σx² − N·mean².
 */
export function keptMoments(features: LayerRowFeatures, kept: readonly number[]): LiveMoments {
  const { channels, spatial } = features;
  const mean = new Float64Array(channels);
  const m2 = new Float64Array(channels);
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    for (const r of kept) sum += features.mean[r * channels + c]!;
    const mu = kept.length > 0 ? sum / kept.length : 0;
    let within = 0;
    let between = 0;
    for (const r of kept) {
      const s = features.spread[r * channels + c]!;
      const d = features.mean[r * channels + c]! - mu;
      within += s * s;
      between += d * d;
    }
    mean[c] = mu;
    m2[c] = spatial * (within + between);
  }
  return { count: kept.length * spatial, mean, m2 };
}
