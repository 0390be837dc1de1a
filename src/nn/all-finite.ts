/**
 * Whether every value is finite, in one pass of additions that does not branch per value: a sum
 * of finite values is finite (float32 values are below 3.5e38 in magnitude, so a float64 sum of
 * fewer than 5e269 of them cannot overflow), and a NaN or ±∞ anywhere makes the sum NaN or ±∞
 * (∞ + −∞ is NaN). s − s is 0 exactly when s is finite. Eight independent sums keep the adds from
 * waiting on each other: 16,384 values take ~8 µs here against ~21 µs for a loop that tests each
 * value (`npx tsx bench/finite-check.ts`; bench/README.md, issue 11's twelfth round). Callers
 * that find a non-finite value then look for it with a plain loop, which only bad input pays for.
 */
export function allFinite(values: Float32Array): boolean {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  const n = values.length;
  const whole = n - (n % 8);
  let i = 0;
  for (; i < whole; i += 8) {
    s0 += values[i]!;
    s1 += values[i + 1]!;
    s2 += values[i + 2]!;
    s3 += values[i + 3]!;
    s4 += values[i + 4]!;
    s5 += values[i + 5]!;
    s6 += values[i + 6]!;
    s7 += values[i + 7]!;
  }
  for (; i < n; i++) s0 += values[i]!;
  const s = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
  return s - s === 0;
}
