import { demotePair, promoteHigh } from './f64-lanes-wat.js';
import { locals, range } from './wat-text.js';

/**
 * The training GEMM, as WebAssembly text: float32 operands, float64 sums, each output summed in
 * the order the JavaScript reference sums it (nn/reference-kernels.ts), so the two give the same
 * bits:
 *
 *   s = bias[j] + 0 (or +0; the caller packs it so);  s ← s + A[i, p]·B[p, j] for p = 0, 1, …, K−1;
 *   C[i, j] = s, or C[i, j] + s with accumulate; rounded to float32 when C is float32.
 *
 * A product of two float32 values is exact in float64, so multiply-then-add here is the one
 * rounding per term that JavaScript's `s += a * b` makes; f64x2 lanes hold two adjacent columns
 * of C and every lane follows that sequence, never a reassociated or fused one.
 *
 * Operands: A is read through byte strides (element (i, p) at a + i·ars + p·acs), so A and its
 * transpose need no copy; B is packed by `pack_f64` into float64 panels of NR = 4 columns (panel q
 * holds B[p, 4q + j] at ((q·K + p)·4 + j)·8, zero beyond N); the bias is float64, padded with zeros
 * to a multiple of 4; C is row-major with a row stride of `ldc` bytes.
 *
 * Blocking: a 4×4 tile keeps 8 f64x2 accumulators, 2 panel vectors and one broadcast of A in
 * registers; rows left over use a 1×4 tile. Panels are the outer loop, so one panel (K·32 bytes)
 * stays in cache while every row tile streams through it.
 */
export const NR_F64 = 4;
const MR = 4;

/** Bytes of the float64 panels for B [k, n]. */
export const packedF64Bytes = (k: number, n: number): number =>
  Math.ceil(n / NR_F64) * NR_F64 * k * 8;

/**
 * pack_f64(src, rs, cs, K, N, dst): the float64 panels of B[p, j] = src[p·rs + j·cs] (float32,
 * strides in bytes). Conversions only: the values are those of the source.
 */
const pack = `
  (func $pack_f64 (export "pack_f64") (param $src i32) (param $rs i32) (param $cs i32) (param $k i32)
      (param $n i32) (param $dst i32)
    ${locals('i32', 'q', 'np', 'p', 'j', 'col', 'row')}
    (local.set $np (i32.shr_u (i32.add (local.get $n) (i32.const ${NR_F64 - 1})) (i32.const 2)))
    (block $qd (loop $ql
      (br_if $qd (i32.ge_u (local.get $q) (local.get $np)))
      (local.set $p (i32.const 0))
      (local.set $row (local.get $src))
      (block $pd (loop $pl
        (br_if $pd (i32.ge_u (local.get $p) (local.get $k)))
        (local.set $j (i32.const 0))
        (block $jd (loop $jl
          (br_if $jd (i32.ge_u (local.get $j) (i32.const ${NR_F64})))
          (local.set $col (i32.add (i32.shl (local.get $q) (i32.const 2)) (local.get $j)))
          (f64.store (local.get $dst)
            (if (result f64) (i32.lt_u (local.get $col) (local.get $n))
              (then (f64.promote_f32 (f32.load
                (i32.add (local.get $row) (i32.mul (local.get $col) (local.get $cs))))))
              (else (f64.const 0))))
          (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $jl)))
        (local.set $row (i32.add (local.get $row) (local.get $rs)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $pl)))
      (local.set $q (i32.add (local.get $q) (i32.const 1)))
      (br $ql))))`;

/**
 * store_f64(addr, value, out64, accumulate): one output element (the columns of a partial panel):
 * C = s or C + s, as float64 or rounded to float32.
 */
const storeOne = `
  (func $store_one (param $at i32) (param $v f64) (param $out64 i32) (param $acc i32)
    (if (local.get $out64)
      (then
        (if (local.get $acc) (then (local.set $v (f64.add (f64.load (local.get $at)) (local.get $v)))))
        (f64.store (local.get $at) (local.get $v)))
      (else
        (if (local.get $acc)
          (then (local.set $v (f64.add (f64.promote_f32 (f32.load (local.get $at))) (local.get $v)))))
        (f32.store (local.get $at) (f32.demote_f64 (local.get $v))))))`;

/** The text of one tile of `rows` rows: load the bias, the K loop, the store. */
function tile(rows: number): string {
  const r = range(rows);
  const acc = (row: number, half: number) => `$c${row}_${half}`;
  const rowC = (row: number) =>
    `(i32.add (local.get $cq) (i32.mul (i32.add (local.get $i) (i32.const ${row})) (local.get $ldc)))`;
  const initial = `(if (result v128) (local.get $hasBias)
      (then (v128.load offset=%OFF% (local.get $bq))) (else (v128.const i32x4 0 0 0 0)))`;
  const fullStore = (row: number) => {
    const lo = `(local.get ${acc(row, 0)})`;
    const hi = `(local.get ${acc(row, 1)})`;
    return `
        (local.set $at ${rowC(row)})
        (if (local.get $out64)
          (then
            (if (local.get $acc) (then
              (local.set ${acc(row, 0)} (f64x2.add (v128.load (local.get $at)) ${lo}))
              (local.set ${acc(row, 1)} (f64x2.add (v128.load offset=16 (local.get $at)) ${hi}))))
            (v128.store (local.get $at) (local.get ${acc(row, 0)}))
            (v128.store offset=16 (local.get $at) (local.get ${acc(row, 1)})))
          (else
            (if (local.get $acc) (then
              (local.set $old (v128.load (local.get $at)))
              (local.set ${acc(row, 0)} (f64x2.add (f64x2.promote_low_f32x4 (local.get $old)) ${lo}))
              (local.set ${acc(row, 1)} (f64x2.add ${promoteHigh('(local.get $old)')} ${hi}))))
            (v128.store (local.get $at) ${demotePair(`(local.get ${acc(row, 0)})`, `(local.get ${acc(row, 1)})`)})))`;
  };
  const partialStore = (row: number) =>
    range(NR_F64)
      .map(
        (j) => `
        (if (i32.gt_s (local.get $nv) (i32.const ${j})) (then
          (call $store_one
            (i32.add ${rowC(row)} (i32.shl (i32.const ${j}) (local.get $shift)))
            (f64x2.extract_lane ${j % 2} (local.get ${acc(row, j >> 1)}))
            (local.get $out64) (local.get $acc))))`,
      )
      .join('');
  return `
      ${r.map((row) => `(local.set $a${row} (i32.add (local.get $a) (i32.mul (i32.add (local.get $i) (i32.const ${row})) (local.get $ars))))`).join('\n')}
      ${r.map((row) => `(local.set ${acc(row, 0)} ${initial.replace('%OFF%', '0')}) (local.set ${acc(row, 1)} ${initial.replace('%OFF%', '16')})`).join('\n')}
      (local.set $pb (local.get $bp))
      (local.set $end (i32.add (local.get $bp) (i32.shl (local.get $k) (i32.const 5))))
      (block $kd${rows} (loop $kl${rows}
        (br_if $kd${rows} (i32.ge_u (local.get $pb) (local.get $end)))
        (local.set $b0 (v128.load (local.get $pb)))
        (local.set $b1 (v128.load offset=16 (local.get $pb)))
        ${r
          .map(
            (row) => `
        (local.set $x (f64x2.splat (f64.promote_f32 (f32.load (local.get $a${row})))))
        (local.set ${acc(row, 0)} (f64x2.add (local.get ${acc(row, 0)}) (f64x2.mul (local.get $x) (local.get $b0))))
        (local.set ${acc(row, 1)} (f64x2.add (local.get ${acc(row, 1)}) (f64x2.mul (local.get $x) (local.get $b1))))
        (local.set $a${row} (i32.add (local.get $a${row}) (local.get $acs)))`,
          )
          .join('')}
        (local.set $pb (i32.add (local.get $pb) (i32.const 32)))
        (br $kl${rows})))
      (if (i32.ge_s (local.get $nv) (i32.const ${NR_F64}))
        (then ${r.map(fullStore).join('')})
        (else ${r.map(partialStore).join('')}))`;
}

/**
 * gemm_f64(m, n, k, a, ars, acs, b, bias, hasBias, c, ldc, out64, accumulate): see above; b the
 * packed panels, bias float64 padded to the panels' width.
 */
const gemm = `
  (func $gemm_f64 (export "gemm_f64") (param $m i32) (param $n i32) (param $k i32) (param $a i32)
      (param $ars i32) (param $acs i32) (param $b i32) (param $bias i32) (param $hasBias i32)
      (param $c i32) (param $ldc i32) (param $out64 i32) (param $acc i32)
    ${locals('i32', 'q', 'np', 'nv', 'i', 'm4', 'bp', 'bq', 'cq', 'pb', 'end', 'at', 'shift', ...range(MR).map((r) => `a${r}`))}
    ${locals('v128', 'b0', 'b1', 'x', 'old', ...range(MR).flatMap((r) => [`c${r}_0`, `c${r}_1`]))}
    ;; bytes per element of C: 8 (float64) or 4 (float32), as a shift
    (local.set $shift (select (i32.const 3) (i32.const 2) (local.get $out64)))
    (local.set $np (i32.shr_u (i32.add (local.get $n) (i32.const ${NR_F64 - 1})) (i32.const 2)))
    (local.set $m4 (i32.and (local.get $m) (i32.const -${MR})))
    (block $qd (loop $ql
      (br_if $qd (i32.ge_u (local.get $q) (local.get $np)))
      (local.set $nv (i32.sub (local.get $n) (i32.shl (local.get $q) (i32.const 2))))
      (local.set $bp (i32.add (local.get $b) (i32.mul (i32.mul (local.get $q) (local.get $k)) (i32.const 32))))
      (local.set $bq (i32.add (local.get $bias) (i32.shl (local.get $q) (i32.const 5))))
      (local.set $cq (i32.add (local.get $c) (i32.shl (i32.shl (local.get $q) (i32.const 2)) (local.get $shift))))
      (local.set $i (i32.const 0))
      (block $id (loop $il
        (br_if $id (i32.ge_u (local.get $i) (local.get $m4)))
        ${tile(MR)}
        (local.set $i (i32.add (local.get $i) (i32.const ${MR})))
        (br $il)))
      (block $rd (loop $rl
        (br_if $rd (i32.ge_u (local.get $i) (local.get $m)))
        ${tile(1)}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $rl)))
      (local.set $q (i32.add (local.get $q) (i32.const 1)))
      (br $ql))))`;

export function gemmF64Wat(): string {
  return [pack, storeOne, gemm].join('\n');
}
