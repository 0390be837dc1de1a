import { describe, expect, it } from 'vitest';
import { FLOAT32_MAX, FLOAT32_ROUNDING_MAX, roundsToFiniteFloat32 } from '../../src/nn/index.js';

/** The next double above `x` (x positive and finite). */
function nextUp(x: number): number {
  const f64 = new Float64Array([x]);
  const bits = new BigUint64Array(f64.buffer);
  bits[0]! += 1n;
  return f64[0]!;
}

describe('the float32 range of input values', () => {
  it('FLOAT32_MAX is the largest finite float32, 2^128 − 2^104', () => {
    expect(FLOAT32_MAX).toBe(2 ** 128 - 2 ** 104);
    expect(Math.fround(FLOAT32_MAX)).toBe(FLOAT32_MAX);
    expect(new Float32Array(new Uint32Array([0x7f7fffff]).buffer)[0]).toBe(FLOAT32_MAX);
  });

  it('FLOAT32_ROUNDING_MAX is the largest double that rounds to a finite float32', () => {
    expect(FLOAT32_ROUNDING_MAX).toBe(2 ** 128 - 2 ** 103 - 2 ** 75);
    expect(nextUp(FLOAT32_ROUNDING_MAX)).toBe(2 ** 128 - 2 ** 103);
    expect(Math.fround(FLOAT32_ROUNDING_MAX)).toBe(FLOAT32_MAX);
    // The halfway point rounds to the even neighbour, 2^128: Infinity.
    expect(Math.fround(nextUp(FLOAT32_ROUNDING_MAX))).toBe(Number.POSITIVE_INFINITY);
  });

  it('roundsToFiniteFloat32 says whether Math.fround stays finite', () => {
    const values = [
      0,
      -0,
      1e-45,
      FLOAT32_MAX,
      3.4028235e38,
      -3.4028235e38,
      FLOAT32_ROUNDING_MAX,
      -FLOAT32_ROUNDING_MAX,
      nextUp(FLOAT32_ROUNDING_MAX),
      -nextUp(FLOAT32_ROUNDING_MAX),
      1e39,
      Number.MAX_VALUE,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
    ];
    for (const x of values)
      expect(roundsToFiniteFloat32(x), String(x)).toBe(Number.isFinite(Math.fround(x)));
    expect(roundsToFiniteFloat32(3.4028235e38)).toBe(true);
  });
});
