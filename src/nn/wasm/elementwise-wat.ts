import { ACTIVATION_CODES } from './activation-codes.js';
import { demotePair, promoteHigh } from './f64-lanes-wat.js';
import { locals } from './wat-text.js';

/**
 * The per-element steps of a plan as SIMD loops over row-major [rows, features] blocks. Each row
 * is processed four features at a time; the last vector of a row may read past the row (the
 * engine's memory regions end in 16 bytes of slack) but stores only its valid lanes.
 */

/** store_partial(p, v, n): stores lanes 0 … n−1 of v (all four when n ≥ 4). */
const storePartial = `
  (func $store_partial (param $p i32) (param $v v128) (param $n i32)
    (if (i32.ge_s (local.get $n) (i32.const 4))
      (then (v128.store (local.get $p) (local.get $v)) (return)))
    (if (i32.ge_s (local.get $n) (i32.const 1))
      (then (f32.store (local.get $p) (f32x4.extract_lane 0 (local.get $v)))))
    (if (i32.ge_s (local.get $n) (i32.const 2))
      (then (f32.store offset=4 (local.get $p) (f32x4.extract_lane 1 (local.get $v)))))
    (if (i32.ge_s (local.get $n) (i32.const 3))
      (then (f32.store offset=8 (local.get $p) (f32x4.extract_lane 2 (local.get $v))))))`;

/** act_pass(src, dst, count, code, slope): dst[i] = act(src[i]) over a contiguous block. */
const actPass = `
  (func $act_pass (export "act_pass") (param $src i32) (param $dst i32) (param $count i32)
      (param $code i32) (param $slope f32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_s (local.get $i) (local.get $count)))
      (call $store_partial (local.get $dst)
        (call $act (v128.load (local.get $src)) (local.get $code) (local.get $slope))
        (i32.sub (local.get $count) (local.get $i)))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))`;

/** Activates $v and stores features $k … $k+3 (fewer at the row's end) at $dst. */
const activateAndStore = `(call $store_partial (i32.add (local.get $dst) (i32.shl (local.get $k) (i32.const 2)))
          (call $act (local.get $v) (local.get $code) (local.get $slope))
          (i32.sub (local.get $f) (local.get $k)))`;

/**
 * Loops over rows × feature vectors; `body` computes the vector for features $k … $k+3 of the row
 * at $src (into $v), which `store` writes at $dst (activated, partial at the row's end, unless
 * the caller knows better).
 */
const rowLoop = (body: string, store = activateAndStore) => `
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $k (i32.const 0))
      (block $k_done (loop $ks
        (br_if $k_done (i32.ge_s (local.get $k) (local.get $f)))
        ${body}
        ${store}
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br $ks)))
      (local.set $src (i32.add (local.get $src) (i32.shl (local.get $f) (i32.const 2))))
      (local.set $dst (i32.add (local.get $dst) (i32.shl (local.get $f) (i32.const 2))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows)))`;

const at = (base: string) =>
  `(i32.add (local.get $${base}) (i32.shl (local.get $k) (i32.const 2)))`;

/** Address of float64 element $k of the array at $base. */
const at64 = (base: string) =>
  `(i32.add (local.get $${base}) (i32.shl (local.get $k) (i32.const 3)))`;

/** x·scale + shift for features $k … $k+3 of the row at $src, in float64, rounded once into $v. */
const affineVector = `(local.set $x (v128.load ${at('src')}))
        (local.set $lo (f64x2.add (f64x2.mul (f64x2.promote_low_f32x4 (local.get $x))
          (v128.load ${at64('scale')})) (v128.load ${at64('shift')})))
        (local.set $hi (f64x2.add (f64x2.mul ${promoteHigh('(local.get $x)')}
          (v128.load offset=16 ${at64('scale')})) (v128.load offset=16 ${at64('shift')})))
        (local.set $v ${demotePair('(local.get $lo)', '(local.get $hi)')})`;

/**
 * affine(src, dst, rows, f, scale, shift, code, slope): act(x·scale + shift) per feature, with
 * float64 scale and shift (f values each, padded to a multiple of 4) and the value computed in
 * float64, rounded once to float32 before the activation (like nn's BatchNorm; plan.ts AffineStep).
 *
 * Rows of whole vectors (f a multiple of 4) with no activation or ReLU — the input transform and a
 * BatchNorm → ReLU of the statistics plans — take a loop without calls: $act's ReLU is
 * pmax(v, 0) = v < 0 ? 0 : v, and pmax(v, −∞) is v, so one pmax with $floor (0 or −∞ in every
 * lane) is either. The
 * calls to $act and $store_partial per vector of the general loop cost about as much as the
 * arithmetic (bench/README.md, "Recalibration", fourth round).
 */
const affine = `
  (func $affine (export "affine") (param $src i32) (param $dst i32) (param $rows i32) (param $f i32)
      (param $scale i32) (param $shift i32) (param $code i32) (param $slope f32)
    ${locals('i32', 'r', 'k')} ${locals('v128', 'v', 'x', 'lo', 'hi', 'floor')}
    (if (i32.and (i32.eqz (i32.and (local.get $f) (i32.const 3)))
          (i32.le_u (local.get $code) (i32.const ${ACTIVATION_CODES.relu})))
      (then
        (local.set $floor (if (result v128) (local.get $code)
          (then (v128.const i32x4 0 0 0 0))
          (else (f32x4.splat (f32.const -inf)))))
        ${rowLoop(affineVector, `(v128.store ${at('dst')} (f32x4.pmax (local.get $v) (local.get $floor)))`)}
        (return)))
    ${rowLoop(affineVector)})`;

/** The float64 sum of both lanes of an f64x2. */
const hsum = (v: string) => `(f64.add (f64x2.extract_lane 0 ${v}) (f64x2.extract_lane 1 ${v}))`;
/**
 * layernorm(src, dst, rows, f, eps, gamma, beta, code, slope): each row normalised by its own mean
 * and biased variance, both accumulated in float64 like the JavaScript kernel; then
 * h = (x − mean)/√(var + eps) and, when gamma ≠ 0, h·gamma + beta, in float64, rounded once to
 * float32 before the activation.
 */
const layerNorm = `
  (func $layernorm (export "layernorm") (param $src i32) (param $dst i32) (param $rows i32)
      (param $f i32) (param $eps f64) (param $gamma i32) (param $beta i32) (param $code i32)
      (param $slope f32)
    ${locals('i32', 'r', 'k')} ${locals('v128', 'v', 'x', 'lo', 'hi', 'm', 'inv', 'acc0', 'acc1')}
    ${locals('f64', 'sum', 'mean', 'd')}
    ${rowLoop(`(if (i32.eqz (local.get $k)) (then
          ;; mean: two f64x2 accumulators over whole vectors, then the rest one by one
          (local.set $acc0 (f64x2.splat (f64.const 0)))
          (local.set $acc1 (f64x2.splat (f64.const 0)))
          (block $sd (loop $sl
            (br_if $sd (i32.gt_s (i32.add (local.get $k) (i32.const 4)) (local.get $f)))
            (local.set $x (v128.load ${at('src')}))
            (local.set $acc0 (f64x2.add (local.get $acc0) (f64x2.promote_low_f32x4 (local.get $x))))
            (local.set $acc1 (f64x2.add (local.get $acc1) ${promoteHigh('(local.get $x)')}))
            (local.set $k (i32.add (local.get $k) (i32.const 4)))
            (br $sl)))
          (local.set $sum (f64.add ${hsum('(local.get $acc0)')} ${hsum('(local.get $acc1)')}))
          (block $td (loop $tl
            (br_if $td (i32.ge_s (local.get $k) (local.get $f)))
            (local.set $sum (f64.add (local.get $sum) (f64.promote_f32 (f32.load ${at('src')}))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $tl)))
          (local.set $mean (f64.div (local.get $sum) (f64.convert_i32_s (local.get $f))))
          (local.set $m (f64x2.splat (local.get $mean)))
          ;; biased variance: Σ (x − mean)² / f
          (local.set $k (i32.const 0))
          (local.set $acc0 (f64x2.splat (f64.const 0)))
          (local.set $acc1 (f64x2.splat (f64.const 0)))
          (block $vd (loop $vl
            (br_if $vd (i32.gt_s (i32.add (local.get $k) (i32.const 4)) (local.get $f)))
            (local.set $x (v128.load ${at('src')}))
            (local.set $lo (f64x2.sub (f64x2.promote_low_f32x4 (local.get $x)) (local.get $m)))
            (local.set $hi (f64x2.sub ${promoteHigh('(local.get $x)')} (local.get $m)))
            (local.set $acc0 (f64x2.add (local.get $acc0) (f64x2.mul (local.get $lo) (local.get $lo))))
            (local.set $acc1 (f64x2.add (local.get $acc1) (f64x2.mul (local.get $hi) (local.get $hi))))
            (local.set $k (i32.add (local.get $k) (i32.const 4)))
            (br $vl)))
          (local.set $sum (f64.add ${hsum('(local.get $acc0)')} ${hsum('(local.get $acc1)')}))
          (block $wd (loop $wl
            (br_if $wd (i32.ge_s (local.get $k) (local.get $f)))
            (local.set $d (f64.sub (f64.promote_f32 (f32.load ${at('src')})) (local.get $mean)))
            (local.set $sum (f64.add (local.get $sum) (f64.mul (local.get $d) (local.get $d))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $wl)))
          (local.set $inv (f64x2.splat (f64.div (f64.const 1) (f64.sqrt (f64.add
            (f64.div (local.get $sum) (f64.convert_i32_s (local.get $f))) (local.get $eps))))))
          (local.set $k (i32.const 0))))
        (local.set $x (v128.load ${at('src')}))
        (local.set $lo (f64x2.mul (f64x2.sub (f64x2.promote_low_f32x4 (local.get $x)) (local.get $m)) (local.get $inv)))
        (local.set $hi (f64x2.mul (f64x2.sub ${promoteHigh('(local.get $x)')} (local.get $m)) (local.get $inv)))
        (if (local.get $gamma) (then
          (local.set $x (v128.load ${at('gamma')}))
          (local.set $v (v128.load ${at('beta')}))
          (local.set $lo (f64x2.add (f64x2.mul (local.get $lo) (f64x2.promote_low_f32x4 (local.get $x)))
            (f64x2.promote_low_f32x4 (local.get $v))))
          (local.set $hi (f64x2.add (f64x2.mul (local.get $hi) ${promoteHigh('(local.get $x)')})
            ${promoteHigh('(local.get $v)')}))))
        (local.set $v ${demotePair('(local.get $lo)', '(local.get $hi)')})`)})`;

export function elementwiseWat(): string {
  return [storePartial, actPass, affine, layerNorm].join('\n');
}
