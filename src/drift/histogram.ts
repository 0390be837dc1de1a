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
 * ⌊tail·n⌋ and ⌊(1 − tail)·n⌋ (from 0) among the n finite ones, as a sorted copy would give them.
 * Found without sorting or moving the values (a sort took ~100 ms per 262,144 values, a selection
 * in a copy — Hoare's FIND — ~5 ms, most of a digits-cnn picture): one pass counts the values per
 * bucket of the top 16 bits of their IEEE 754 pattern (negative patterns flipped, so the buckets
 * follow the values' order), a second copies out the values of the two buckets that hold the
 * ranks, and a selection reads those (a few thousand values). Float32Array and Float64Array
 * values are read in place; any other array is copied into a Float64Array first (into `scratch`
 * when it is long enough: first writes to a fresh 32 MiB array cost ~100 ms of page faults on this
 * VM).
 *
 * Exact selections agree on the values but not on the sign of a zero (−0 and +0 compare equal):
 * when a bound is zero and both zeros occur, both bounds are those of the selection in a copy of
 * the finite values in their order that robustRange made before (selectRanksInCopy), bit for bit.
 */
export function robustRange(
  values: ArrayLike<number>,
  tail = 0.005,
  scratch?: Float64Array,
): [number, number] {
  const typed =
    values instanceof Float32Array || values instanceof Float64Array
      ? values
      : copyInto(values, scratch);
  const range = LITTLE_ENDIAN ? rangeByBuckets(typed, tail) : selectRanksInCopy(typed, tail);
  if (range === undefined) return [-1, 1];
  let [lo, hi] = range;
  if ((lo === 0 || hi === 0) && hasBothZeros(typed)) {
    [lo, hi] = selectRanksInCopy(typed, tail, scratch)!;
  }
  if (!(hi > lo)) {
    lo -= 1;
    hi += 1;
  }
  return [lo, hi];
}

/** Buckets of rangeByBuckets: the top 16 bits of a value's IEEE 754 pattern. */
const BUCKETS = 1 << 16;
const bucketCounts = new Uint32Array(BUCKETS);
/** The high word of a float64 is the second of its two 32-bit words (little-endian, as Node runs). */
const LITTLE_ENDIAN = new Uint32Array(Float64Array.of(-1).buffer)[1] === 0xbff00000;

function copyInto(values: ArrayLike<number>, scratch: Float64Array | undefined): Float64Array {
  const copy =
    scratch && scratch.length >= values.length
      ? scratch.subarray(0, values.length)
      : new Float64Array(values.length);
  copy.set(values);
  return copy;
}

/**
 * The values of ranks ⌊tail·n⌋ and ⌊(1 − tail)·n⌋ of the n finite values (undefined when there
 * are none), by bucket counts. A bucket is the top 16 bits t of the pattern (of its high 32-bit
 * word for a float64) mapped to t ^ 0xffff when the sign is set (larger magnitudes lower) and to
 * t | 0x8000 otherwise, so bucket order is value order; non-finite patterns (exponent all ones)
 * are skipped.
 */
function rangeByBuckets(
  values: Float32Array | Float64Array,
  tail: number,
): [number, number] | undefined {
  const float64 = values instanceof Float64Array;
  // Int32 words: a Uint32Array's values above 2³¹ − 1 would be read as doubles.
  const words = new Int32Array(values.buffer, values.byteOffset, values.length * (float64 ? 2 : 1));
  const step = float64 ? 2 : 1;
  const first = float64 ? 1 : 0;
  // Exponent bits of the high word: all ones is ±∞ or NaN.
  const special = float64 ? 0x7ff00000 : 0x7f800000;
  const counts = bucketCounts;
  counts.fill(0);
  let n = 0;
  for (let i = first; i < words.length; i += step) {
    const w = words[i]!;
    if ((w & special) === special) continue;
    const t = w >>> 16;
    counts[t ^ ((-(t >>> 15) & 0x7fff) | 0x8000)]!++;
    n++;
  }
  if (n === 0) return undefined;
  const low = Math.min(n - 1, Math.floor(tail * n));
  const high = Math.min(n - 1, Math.floor((1 - tail) * n));
  // The bucket holding each rank, and the rank within it.
  let lowBucket = -1;
  let highBucket = -1;
  let lowRank = 0;
  let highRank = 0;
  for (let b = 0, seen = 0; b < BUCKETS && (lowBucket < 0 || highBucket < 0); b++) {
    const c = counts[b]!;
    if (lowBucket < 0 && low < seen + c) {
      lowBucket = b;
      lowRank = low - seen;
    }
    if (highBucket < 0 && high < seen + c) {
      highBucket = b;
      highRank = high - seen;
    }
    seen += c;
  }
  const lowValues = new Float64Array(counts[lowBucket]!);
  const highValues = highBucket === lowBucket ? lowValues : new Float64Array(counts[highBucket]!);
  let l = 0;
  let h = 0;
  for (let i = first, v = 0; i < words.length; i += step, v++) {
    const w = words[i]!;
    if ((w & special) === special) continue;
    const t = w >>> 16;
    const b = t ^ ((-(t >>> 15) & 0x7fff) | 0x8000);
    if (b === lowBucket) lowValues[l++] = values[v]!;
    else if (b === highBucket) highValues[h++] = values[v]!;
  }
  const lo = selectInPlace(lowValues, lowRank);
  // As in one array: the first selection left everything from lowRank on ≥ lo.
  const hi = selectInPlace(
    highValues,
    highRank,
    highValues === lowValues && highRank >= lowRank ? lowRank : 0,
  );
  return [lo, hi];
}

/** Whether both −0 and +0 occur among the values. */
function hasBothZeros(values: Float32Array | Float64Array): boolean {
  let negative = false;
  let positive = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v !== 0) continue;
    if (1 / v < 0) negative = true;
    else positive = true;
    if (negative && positive) return true;
  }
  return false;
}

/**
 * The two ranks as robustRange selected them before the buckets: the finite values copied in
 * their order (into `scratch` when long enough), Hoare's FIND for the lower rank, then for the
 * upper one from the lower's position (undefined when no value is finite).
 */
function selectRanksInCopy(
  values: Float32Array | Float64Array,
  tail: number,
  scratch?: Float64Array,
): [number, number] | undefined {
  const finite =
    scratch && scratch.length >= values.length && scratch.buffer !== values.buffer
      ? scratch.subarray(0, values.length)
      : new Float64Array(values.length);
  finite.set(values);
  let n = 0;
  for (let i = 0; i < finite.length; i++) {
    const v = finite[i]!;
    if (v - v === 0) finite[n++] = v;
  }
  if (n === 0) return undefined;
  const rank = (q: number) => Math.min(n - 1, Math.floor(q * n));
  const low = rank(tail);
  const high = rank(1 - tail);
  const view = finite.subarray(0, n);
  const lo = selectInPlace(view, low);
  // The first selection left everything from `low` on ≥ lo, so the second starts there.
  const hi = selectInPlace(view, high, high >= low ? low : 0);
  return [lo, hi];
}
