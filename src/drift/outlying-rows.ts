import type { LiveMoments } from './layer-drift.js';
import { selectInPlace } from './order-statistics.js';

/**
 * Bound of the screening of a traffic sample, in robust standard deviations of the sample itself
 * (docs/drift.md, "Outlying rows"): a row is outlying when one of its features lies more than
 * OUTLIER_BOUND · σ̂ from the sample's median. Of the bundled models' 1,797 digits rows, clean or
 * night-shifted, none lies beyond 9.8 (test/drift/outlying-rows.test.ts checks none beyond 10),
 * while m kept rows among n move a channel's mean by at most bound·m/n robust deviations and add
 * at most bound²·m/n σ̂² to its variance: 3 rows at the bound in a sample of 512, 0.07 σ̂ and
 * 0.84 σ̂² (the same test, with keptMoments on rows at the bound).
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
 * σ̂ = max(MAD_TO_SIGMA · median{|f − med| : f ≠ mode}, SCALE_FLOOR · √(running_var_c + ε)) —
 * the MAD of the rows off the sample's mass point (massPoint: its most frequent value when a
 * value repeats; no row is left out of the scale otherwise, and it is the MAD).
 *
 * Why off the mass point: the MAD is a median, so a value that holds half the sample makes it 0
 * (Rousseeuw & Croux, "Alternatives to the median absolute deviation", JASA 88, 1993: the MAD,
 * and their Qn and Sn as well, implode once half the observations coincide), and one that holds
 * 40–50 % shrinks it to the gap between that value and the median. A BatchNorm after a ReLU, or
 * on sparse pixels, has exactly such a value (0 wherever the unit did not fire): with the MAD,
 * every row where it fired more than a few floors away was "outlying" (512 rows, 60 % zeros and
 * the rest |N(0,1)|: 146 of them), and the screening kept the rows where it did not fire. The
 * rows at the mass point say only that there is one; the spread is what the others show: for
 * f = ReLU(z), z ~ N(0, σ²), those are half-normal, with median Φ⁻¹(3/4)·σ, so MAD_TO_SIGMA times
 * their median distance from 0 is σ again, whatever share of rows did not fire. A mean absolute
 * deviation over all rows would not implode but would shrink with the share at the mass point
 * (at 90 % zeros to a tenth, dropping the fired rows again), and has no breakdown point.
 *
 * What rows can do: the centre is a median of all n rows (breakdown point 1/2: fewer than half
 * the rows, wherever they are, cannot move it arbitrarily), the scale a median of the k rows off
 * the mass point (breakdown point k/2 rows; k = n when no value repeats), so a handful of absurd
 * rows cannot hide themselves by widening the scale they are judged by, as they would a mean and
 * a standard deviation. Rows that all repeat one value are left out of the scale only if they are
 * the sample's largest tie, which narrows it. The weakness is a channel that is nearly constant:
 * when it fires on k rows of n, ⌈k/2⌉ rows far out on it set its scale (3 rows when it fires on 5)
 * and are judged there by their own spread; such rows are still judged by every other channel and
 * layer they pass through, where they are few among n.
 */
export function rowOutlyingness(
  layers: readonly { features: LayerRowFeatures; runningVar: ArrayLike<number>; eps: number }[],
  rows: number,
): Float64Array {
  const distance = new Float64Array(rows);
  const column = new Float64Array(rows);
  const sorted = new Float64Array(rows);
  for (const { features, runningVar, eps } of layers) {
    const { channels, spatial } = features;
    const kinds = spatial > 1 ? [features.mean, features.spread] : [features.mean];
    for (const values of kinds)
      for (let c = 0; c < channels; c++) {
        for (let r = 0; r < rows; r++) sorted[r] = values[r * channels + c]!;
        sorted.sort();
        const centre = sortedMedian(sorted);
        const mass = massPoint(sorted);
        let off = 0;
        for (let r = 0; r < rows; r++) {
          const v = values[r * channels + c]!;
          if (v !== mass) column[off++] = Math.abs(v - centre);
        }
        const spread = off > 0 ? median(column.subarray(0, off)) : 0;
        const scale = Math.max(
          MAD_TO_SIGMA * spread,
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

/**
 * The most frequent value of `sorted` (ascending) when some value occurs more than once (of the
 * values tied for most frequent, the smallest), else NaN — which no value equals.
 */
export function massPoint(sorted: Float64Array): number {
  let best = Number.NaN;
  let bestCount = 1;
  for (let i = 0; i < sorted.length; ) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === sorted[i]) j++;
    if (j - i > bestCount) {
      best = sorted[i]!;
      bestCount = j - i;
    }
    i = j;
  }
  return best;
}

/** The median of an ascending array (the mean of the two middle values for an even count). */
function sortedMedian(sorted: Float64Array): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const h = n >> 1;
  return n % 2 === 1 ? sorted[h]! : (sorted[h - 1]! + sorted[h]!) / 2;
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
