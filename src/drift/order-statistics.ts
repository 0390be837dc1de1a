/**
 * The k-th smallest of `a[lo..hi]` (k counted from 0 in the whole array), found by moving
 * elements of `a` in place (Hoare's FIND, "Algorithm 65", CACM 1961) so that afterwards every
 * element before index k is ≤ a[k] and every one after it is ≥ a[k]: a second call for a larger k
 * may start at the first k. Expected time linear in hi − lo; the pivot is the median of three,
 * and what is left after 2·log2(n) + 8 partitions is sorted instead (V8's native typed-array
 * sort), so no input takes quadratic time. The values must not be NaN.
 */
export function selectInPlace(a: Float64Array, k: number, lo = 0, hi = a.length - 1): number {
  if (!(k >= lo && k <= hi) || !Number.isInteger(k))
    throw new RangeError(`selectInPlace: k ${k} outside [${lo}, ${hi}]`);
  let budget = 2 * Math.ceil(Math.log2(hi - lo + 2)) + 8;
  while (hi > lo) {
    if (budget-- === 0) {
      a.subarray(lo, hi + 1).sort();
      return a[k]!;
    }
    const mid = lo + ((hi - lo) >> 1);
    const pivot = medianOfThree(a[lo]!, a[mid]!, a[hi]!);
    let i = lo;
    let j = hi;
    // Hoare's partition: both scans stop at elements equal to the pivot, so runs of equal values
    // split evenly instead of degrading.
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    // a[lo..j] ≤ pivot, a[i..hi] ≥ pivot, and everything strictly between equals the pivot.
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]!;
  }
  return a[k]!;
}

function medianOfThree(x: number, y: number, z: number): number {
  return Math.max(Math.min(x, y), Math.min(Math.max(x, y), z));
}
