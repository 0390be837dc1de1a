import { expect } from 'vitest';

/** Largest |a − b| over two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Asserts |a − b| ≤ atol element-wise, reporting the worst element. */
export function expectClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  what = 'values',
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = -1;
  let worstDiff = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (!(d <= worstDiff)) {
      worstDiff = d;
      worst = i;
    }
  }
  expect(
    worstDiff,
    `${what}: worst at [${worst}] actual ${actual[worst]} expected ${expected[worst]}`,
  ).toBeLessThanOrEqual(atol);
}

/** Asserts |a − b| ≤ rtol·max(|b|, floor) element-wise. */
export function expectRelClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  rtol: number,
  what = 'values',
  floor = 1e-6,
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) {
    const scale = Math.max(Math.abs(expected[i]!), floor);
    const rel = Math.abs(actual[i]! - expected[i]!) / scale;
    expect(rel, `${what}[${i}]: actual ${actual[i]} expected ${expected[i]}`).toBeLessThanOrEqual(
      rtol,
    );
  }
}
