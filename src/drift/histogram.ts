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

/** The range [lo, hi] holding all but `tail` of the values at each end (sorted copy). */
export function robustRange(values: ArrayLike<number>, tail = 0.005): [number, number] {
  const sorted = Float64Array.from(values).filter(Number.isFinite).sort();
  if (sorted.length === 0) return [-1, 1];
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  let lo = at(tail);
  let hi = at(1 - tail);
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  return [lo, hi];
}
