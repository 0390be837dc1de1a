/** Helpers for writing WebAssembly text from TypeScript. */

/** A float32 constant written so that it reads back as exactly that float32 value. */
export const f32 = (x: number): string => {
  const v = Math.fround(x);
  if (Number.isNaN(v)) return 'nan';
  if (v === Number.POSITIVE_INFINITY) return 'inf';
  if (v === Number.NEGATIVE_INFINITY) return '-inf';
  return Object.is(v, -0) ? '-0' : String(v);
};

/** A float64 constant (JavaScript's shortest round-trip form). */
export const f64 = (x: number): string => (Object.is(x, -0) ? '-0' : String(x));

/** `v128.const f32x4 x x x x`. */
export const splat = (x: number): string => {
  const s = f32(x);
  return `(v128.const f32x4 ${s} ${s} ${s} ${s})`;
};

/** `(local $name type)` for each name. */
export const locals = (type: string, ...names: string[]): string =>
  names.map((n) => `(local $${n} ${type})`).join(' ');

/** The integers 0 … n−1. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
