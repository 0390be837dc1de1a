import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { robustRange } from '../../src/drift/index.js';
import { selectInPlace } from '../../src/drift/order-statistics.js';
import { referenceRobustRange } from '../helpers/reference-pictures.js';

/** robustRange as it was written first: a sorted copy of the finite values, read at two ranks. */
function sortedRange(values: ArrayLike<number>, tail: number): [number, number] {
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

// Few distinct values (runs of equal ones), the infinities and NaN, and any double.
const value = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN, -0),
  fc.double(),
);

describe('selectInPlace', () => {
  it("returns the sorted array's k-th element and leaves smaller ranks before it, larger after", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: -3, max: 3 }), fc.double({ noNaN: true })), {
          minLength: 1,
          maxLength: 300,
        }),
        fc.nat(),
        (list, seed) => {
          const a = Float64Array.from(list);
          const sorted = Float64Array.from(list).sort();
          const k = seed % a.length;
          // The value, not its zero's sign: the selection compares with < and >, to which −0 and
          // +0 are equal ([−0, 0] at rank 0 may give either; robustRange settles zeros itself).
          expect(selectInPlace(a, k) + 0).toBe(sorted[k]! + 0);
          for (let i = 0; i < k; i++) expect(a[i]! <= a[k]!).toBe(true);
          for (let i = k + 1; i < a.length; i++) expect(a[i]! >= a[k]!).toBe(true);
          expect(Float64Array.from(a).sort()).toEqual(sorted);
        },
      ),
    );
  });

  it('stays exact on inputs that defeat a median-of-three pivot (sorted, reversed, organ pipe, all equal)', () => {
    const n = 20_001;
    const inputs = [
      Float64Array.from({ length: n }, (_, i) => i),
      Float64Array.from({ length: n }, (_, i) => n - i),
      Float64Array.from({ length: n }, (_, i) => Math.min(i, n - i)),
      new Float64Array(n).fill(7),
      Float64Array.from({ length: n }, (_, i) => (i % 2 === 0 ? i : n - i)),
    ];
    for (const input of inputs) {
      const sorted = Float64Array.from(input).sort();
      for (const k of [0, 100, n >> 1, n - 101, n - 1]) {
        expect(selectInPlace(Float64Array.from(input), k)).toBe(sorted[k]);
      }
    }
  });

  it('refuses a rank outside the range', () => {
    expect(() => selectInPlace(new Float64Array(3), 3)).toThrow(RangeError);
    expect(() => selectInPlace(new Float64Array(3), 0.5)).toThrow(RangeError);
  });
});

describe('robustRange', () => {
  it('equals the sorted copy read at ranks ⌊tail·n⌋ and ⌊(1 − tail)·n⌋ of the finite values', () => {
    fc.assert(
      fc.property(
        fc.array(value, { maxLength: 500 }),
        fc.constantFrom(0, 0.005, 0.1, 0.25, 0.5),
        (list, tail) => {
          // A sort puts −0 before +0, a selection takes them as equal: the same bound (x + 0).
          const same = ([lo, hi]: [number, number]) => [lo + 0, hi + 0];
          expect(same(robustRange(Float32Array.from(list), tail))).toEqual(
            same(sortedRange(Float32Array.from(list), tail)),
          );
          expect(same(robustRange(list, tail))).toEqual(same(sortedRange(list, tail)));
        },
      ),
    );
  });

  it('gives the bounds the selection in a copy gave before, bit for bit, signs of zero included', () => {
    const zeros = fc.oneof(fc.constantFrom(0, -0), value);
    fc.assert(
      fc.property(
        fc.array(zeros, { maxLength: 500 }),
        fc.constantFrom(0, 0.005, 0.1, 0.25, 0.5, 0.9, 1),
        (list, tail) => {
          for (const values of [list, Float32Array.from(list), Float64Array.from(list)]) {
            expect(robustRange(values, tail)).toStrictEqual(referenceRobustRange(values, tail));
          }
        },
      ),
    );
    // Many values in one bucket, values spread over every bucket, and zeros of both signs at the
    // ranks (the bounds then come from the selection in a copy).
    const big = 50_000;
    const inputs = [
      Float64Array.from({ length: big }, (_, i) => 1 + i / big / 64),
      Float64Array.from({ length: big }, (_, i) => (i % 2 ? -1 : 1) * 2 ** ((i % 2000) - 1000)),
      Float32Array.from({ length: big }, (_, i) => (i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : i)),
      Float64Array.from({ length: big }, (_, i) => (i % 5 === 0 ? Number.NaN : (i % 7) - 3)),
    ];
    for (const input of inputs) {
      for (const tail of [0.005, 0.5]) {
        expect(robustRange(input, tail)).toStrictEqual(referenceRobustRange(input, tail));
      }
    }
  });
});
