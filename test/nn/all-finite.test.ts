import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allFinite } from '../../src/nn/index.js';

const FLOAT32_MAX = 3.4028234663852886e38;
const notFinite = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

describe('allFinite', () => {
  it('agrees with a value-by-value check, wherever the bad values sit (the eight sums and the tail)', () => {
    fc.assert(
      fc.property(
        fc.float32Array({ maxLength: 70 }),
        fc.array(fc.tuple(fc.nat(), fc.constantFrom(...notFinite)), { maxLength: 3 }),
        (clean, bad) => {
          const values = Float32Array.from(clean);
          for (const [at, v] of bad) if (values.length > 0) values[at % values.length] = v;
          expect(allFinite(values)).toBe(values.every(Number.isFinite));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('finds +∞ and −∞ together (their sum is NaN) and one bad value in the last, partial group', () => {
    const values = new Float32Array(19);
    values[3] = Number.POSITIVE_INFINITY;
    values[11] = Number.NEGATIVE_INFINITY;
    expect(allFinite(values)).toBe(false);
    const tail = new Float32Array(19);
    tail[18] = Number.NaN;
    expect(allFinite(tail)).toBe(false);
    expect(allFinite(new Float32Array(0))).toBe(true);
  });

  it('does not overflow on the largest float32 values (the float64 sums stay finite)', () => {
    const values = new Float32Array(1 << 16).fill(FLOAT32_MAX);
    expect(Number.isFinite(values[0]!)).toBe(true);
    expect(allFinite(values)).toBe(true);
    values.fill(-FLOAT32_MAX);
    expect(allFinite(values)).toBe(true);
  });
});
