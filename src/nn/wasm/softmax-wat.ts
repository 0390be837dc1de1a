/**
 * softmax(src, dst, rows, width): the softmax of each row of the [rows, width] float32 block at
 * `src`, written to `dst`: e^(x − max) in float32 as PyTorch computes it (x − max rounded to
 * float32, then $exp, Cephes' expf within 1 ulp; vector-math-wat.ts) four values at a time, then,
 * per row, the sum in float64 in order and each value divided by it in float64 (PyTorch sums in
 * float32 and multiplies by the reciprocal: this is a little more accurate). Not in place: a
 * row's last vector may write up to three values past the row, which the next row then
 * overwrites (dst needs 12 bytes of slack), and its last vector may read as far past the row in
 * src.
 */
export function softmaxWat(): string {
  const at = (base: string) =>
    `(i32.add (local.get ${base}) (i32.shl (local.get $k) (i32.const 2)))`;
  const loop = (name: string, step: number, body: string) => `
      (local.set $k (i32.const ${name === 'max' ? 1 : 0}))
      (block $${name}_done (loop $${name}
        (br_if $${name}_done (i32.ge_s (local.get $k) (local.get $width)))
        ${body}
        (local.set $k (i32.add (local.get $k) (i32.const ${step})))
        (br $${name})))`;
  return `
  (func $softmax (export "softmax") (param $src i32) (param $dst i32) (param $rows i32)
      (param $width i32)
    (local $r i32) (local $k i32) (local $p i32) (local $q i32) (local $max f32) (local $sum f64)
    (block $rows_done (loop $row
      (br_if $rows_done (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $p (i32.add (local.get $src) (i32.shl (i32.mul (local.get $r) (local.get $width)) (i32.const 2))))
      (local.set $q (i32.add (local.get $dst) (i32.shl (i32.mul (local.get $r) (local.get $width)) (i32.const 2))))
      (local.set $max (f32.load (local.get $p)))
      ${loop('max', 1, `(local.set $max (f32.max (local.get $max) (f32.load ${at('$p')})))`)}
      ${loop(
        'exp',
        4,
        `(v128.store ${at('$q')}
          (call $exp (f32x4.sub (v128.load ${at('$p')}) (f32x4.splat (local.get $max)))))`,
      )}
      (local.set $sum (f64.const 0))
      ${loop('sum', 1, `(local.set $sum (f64.add (local.get $sum) (f64.promote_f32 (f32.load ${at('$q')}))))`)}
      ${loop(
        'div',
        1,
        `(f32.store ${at('$q')}
          (f32.demote_f64 (f64.div (f64.promote_f32 (f32.load ${at('$q')})) (local.get $sum))))`,
      )}
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $row))))`;
}
