/**
 * The end of a residual block: dst[i] = act(x[i] + skip[i]), the sum in float32 (exactly the
 * JavaScript executor's Math.fround of the float64 sum of two float32 values) before the
 * activation; four values at a time, the last vector stored lane by lane. Needs the element-wise
 * fields ($act, $store_partial).
 */
const addAct = `
  (func $add_act (export "add_act") (param $x i32) (param $skip i32) (param $dst i32)
      (param $count i32) (param $code i32) (param $slope f32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_s (local.get $i) (local.get $count)))
      (call $store_partial (local.get $dst)
        (call $act (f32x4.add (v128.load (local.get $x)) (v128.load (local.get $skip)))
          (local.get $code) (local.get $slope))
        (i32.sub (local.get $count) (local.get $i)))
      (local.set $x (i32.add (local.get $x) (i32.const 16)))
      (local.set $skip (i32.add (local.get $skip) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (local.set $i (i32.add (local.get $i) (i32.const 4)))
      (br $next))))`;

export function residualWat(): string {
  return addAct;
}
