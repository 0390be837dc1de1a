import type { PoolWindows } from '../pool-windows.js';
import { locals } from './wat-text.js';

/**
 * MaxPool2d, AvgPool2d and AdaptiveAvgPool2d over the same window tables as nn/pool-windows.ts
 * (padding never contributes; the mean's divisor per window), computed exactly as its kernels do:
 * the max with a NaN winning (`v > max || isnan(v)`, ATen's rule), the mean as a float64 sum in
 * row order divided by the divisor and rounded once — so these steps give the JavaScript
 * executor's bits. Scalar loops: next to the convolutions they pool, they are a rounding error.
 */

/** A window's record: byte offsets of its first and end rows, first and end columns; divisor (f64). */
export const POOL_WINDOW_BYTES = 32;
const DIVISOR_OFFSET = 24;

/** Bytes of a window table. */
export const poolTableBytes = (w: PoolWindows): number => w.outH * w.outW * POOL_WINDOW_BYTES;

/** Writes the window table of `w` at `at` (byte offsets into one [inH, inW] plane). */
export function writePoolTable(memory: ArrayBufferLike, at: number, w: PoolWindows): void {
  const words = new Int32Array(memory);
  const doubles = new Float64Array(memory);
  for (let q = 0; q < w.outH * w.outW; q++) {
    const r = at + q * POOL_WINDOW_BYTES;
    words[(r >>> 2) + 0] = w.h0[q]! * w.inW * 4;
    words[(r >>> 2) + 1] = w.h1[q]! * w.inW * 4;
    words[(r >>> 2) + 2] = w.w0[q]! * 4;
    words[(r >>> 2) + 3] = w.w1[q]! * 4;
    doubles[(r + DIVISOR_OFFSET) >>> 3] = w.divisor[q]!;
  }
}

/**
 * pool(src, dst, planes, planeBytes, rowBytes, table, positions, mean): for each of `planes`
 * [inH, inW] planes at src (planeBytes apart, rows rowBytes apart), each window of the table into
 * dst (positions values per plane, consecutive): the max, or with `mean` ≠ 0 the mean.
 */
const pool = `
  (func $pool (export "pool") (param $src i32) (param $dst i32) (param $planes i32)
      (param $planeBytes i32) (param $rowBytes i32) (param $table i32) (param $positions i32)
      (param $mean i32)
    ${locals('i32', 'plane', 'q', 'w', 'r', 'rend', 'p', 'pend', 'c0', 'c1')}
    (local $best f32) (local $v f32) (local $sum f64)
    (block $planes_done (loop $planes
      (br_if $planes_done (i32.ge_u (local.get $plane) (local.get $planes)))
      (local.set $q (i32.const 0))
      (local.set $w (local.get $table))
      (block $q_done (loop $qs
        (br_if $q_done (i32.ge_u (local.get $q) (local.get $positions)))
        (local.set $r (i32.add (local.get $src) (i32.load (local.get $w))))
        (local.set $rend (i32.add (local.get $src) (i32.load offset=4 (local.get $w))))
        (local.set $c0 (i32.load offset=8 (local.get $w)))
        (local.set $c1 (i32.load offset=12 (local.get $w)))
        (local.set $best (f32.const -inf))
        (local.set $sum (f64.const 0))
        (block $r_done (loop $rs
          (br_if $r_done (i32.ge_u (local.get $r) (local.get $rend)))
          (local.set $p (i32.add (local.get $r) (local.get $c0)))
          (local.set $pend (i32.add (local.get $r) (local.get $c1)))
          (if (local.get $mean)
            (then
              (block $m_done (loop $ms
                (br_if $m_done (i32.ge_u (local.get $p) (local.get $pend)))
                (local.set $sum (f64.add (local.get $sum) (f64.promote_f32 (f32.load (local.get $p)))))
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (br $ms))))
            (else
              (block $x_done (loop $xs
                (br_if $x_done (i32.ge_u (local.get $p) (local.get $pend)))
                (local.set $v (f32.load (local.get $p)))
                (if (i32.or (f32.gt (local.get $v) (local.get $best)) (f32.ne (local.get $v) (local.get $v)))
                  (then (local.set $best (local.get $v))))
                (local.set $p (i32.add (local.get $p) (i32.const 4)))
                (br $xs)))))
          (local.set $r (i32.add (local.get $r) (local.get $rowBytes)))
          (br $rs)))
        (if (local.get $mean)
          (then (f32.store (local.get $dst) (f32.demote_f64
            (f64.div (local.get $sum) (f64.load offset=${DIVISOR_OFFSET} (local.get $w))))))
          (else (f32.store (local.get $dst) (local.get $best))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $w (i32.add (local.get $w) (i32.const ${POOL_WINDOW_BYTES})))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $qs)))
      (local.set $src (i32.add (local.get $src) (local.get $planeBytes)))
      (local.set $plane (i32.add (local.get $plane) (i32.const 1)))
      (br $planes))))`;

export function poolWat(): string {
  return pool;
}
