/**
 * softmaxRows computes each exponential once and divides the kept float64 value: its results must
 * be the bits of the textbook form that calls Math.exp again for the division (what the served
 * probabilities were before), for any logits, widths and batch sizes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { softmaxRows } from '../../src/nn/index.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';

function softmaxTwice(logits: Float32Array, n: number, c: number): Float32Array {
  const out = new Float32Array(n * c);
  for (let r = 0; r < n; r++) {
    const base = r * c;
    let max = -Infinity;
    for (let k = 0; k < c; k++) max = Math.max(max, logits[base + k]!);
    let sum = 0;
    for (let k = 0; k < c; k++) sum += Math.exp(logits[base + k]! - max);
    for (let k = 0; k < c; k++) out[base + k] = Math.exp(logits[base + k]! - max) / sum;
  }
  return out;
}

describe('softmaxRows', () => {
  it('equals the two-pass exponential form bit for bit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 24 }),
        fc.array(fc.float({ min: -80, max: 80, noNaN: true, noDefaultInfinity: true }), {
          minLength: 40 * 24,
          maxLength: 40 * 24,
        }),
        (c, n, values) => {
          const logits = Float32Array.from(values.slice(0, n * c));
          expect(softmaxRows(logits, n, c)).toEqual(softmaxTwice(logits, n, c));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rows sum to one and keep the order of their logits', () => {
    const p = softmaxRows(Float32Array.from([1, 2, 3, -1, 0, 1]), 2, 3);
    expect(p[0]! < p[1]! && p[1]! < p[2]!).toBe(true);
    expect(Math.abs(p[0]! + p[1]! + p[2]! - 1)).toBeLessThan(OUTPUT_ATOL);
    expect(Array.from(p.subarray(3))).toEqual(Array.from(p.subarray(0, 3)));
  });
});
