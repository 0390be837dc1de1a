import { selectInPlace } from './order-statistics.js';

/** Counts of values in `bins` equal bins over [min, max]; values outside are counted apart. */
export interface Histogram {
  min: number;
  max: number;
  counts: number[];
  below: number;
  above: number;
}

/** A histogram of finite values over [min, max] (the last bin includes max). */
export function histogram(
  values: ArrayLike<number>,
  min: number,
  max: number,
  bins: number,
): Histogram {
  if (!(max > min) || !Number.isInteger(bins) || bins < 1)
    throw new RangeError('histogram: max must exceed min and bins be a whole number ≥ 1');
  const counts = new Array<number>(bins).fill(0);
  let below = 0;
  let above = 0;
  const scale = bins / (max - min);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) continue;
    if (v < min) below++;
    else if (v > max) above++;
    else counts[Math.min(bins - 1, Math.floor((v - min) * scale))]!++;
  }
  return { min, max, counts, below, above };
}

/**
 * The range [lo, hi] holding all but `tail` of the finite values at each end: the values of rank
 * ⌊tail·n⌋ and ⌊(1 − tail)·n⌋ (from 0) among the n finite ones, as a sorted copy would give them,
 * found by selection in a copy (linear time: a BatchNorm's inputs for a picture are up to a few
 * million values, and a full sort took ~100 ms per 262,144). The copy is made in `scratch` when
 * it is long enough: on this VM, first writes to a fresh 32 MiB array cost ~100 ms of page faults.
 */
export function robustRange(
  values: ArrayLike<number>,
  tail = 0.005,
  scratch?: Float64Array,
): [number, number] {
  const finite =
    scratch && scratch.length >= values.length
      ? scratch.subarray(0, values.length)
      : new Float64Array(values.length);
  // One native copy, then one loop over a Float64Array whatever the values' type.
  finite.set(values);
  let n = 0;
  for (let i = 0; i < finite.length; i++) {
    const v = finite[i]!;
    if (v - v === 0) finite[n++] = v;
  }
  if (n === 0) return [-1, 1];
  const rank = (q: number) => Math.min(n - 1, Math.floor(q * n));
  const low = rank(tail);
  const high = rank(1 - tail);
  const view = finite.subarray(0, n);
  let lo = selectInPlace(view, low);
  // The first selection left everything from `low` on ≥ lo, so the second starts there.
  let hi = selectInPlace(view, high, high >= low ? low : 0);
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  return [lo, hi];
}
