import { demotePair } from './f64-lanes-wat.js';
import { epilogue, epilogueInit } from './gemm-wat.js';
import { locals, range } from './wat-text.js';

/**
 * A GEMM that accumulates in float64, as WebAssembly text:
 *
 *   C[m, n] = epilogue(round32(bias[n] + Σ_k A[m, k]·B[k, n]))   (sums in float64)
 *
 * with gemm's epilogue (gemm-wat.ts: slope 1 identity, −0 ReLU, else LeakyReLU) applied to the
 * float32 value. A (float32, row stride `lda` bytes) and C (float32, row stride `ldc` bytes) are
 * laid out as for gemm; B and the bias are float64: B packed by the host into panels of NR64
 * columns (panel p holds B[k, p·NR64 + j] at ((p·K + k)·NR64 + j)·8, zero beyond N), the bias
 * padded with zeros to a multiple of NR64.
 *
 * Why a second GEMM: the float32 one adds K products in float32, an error of a few ulps per output
 * that is harmless for one prediction but is averaged, not cancelled, by statistics gathered over
 * hundreds of thousands of rows. BatchNorm recalibration must reproduce the nn layers' float64
 * sums (each output rounded once to float32, as PyTorch's float32 value up to its own rounding),
 * so its statistics plans run their dense steps here. Half the lanes of the float32 GEMM.
 *
 * Register blocking: a 2×8 tile keeps 8 f64x2 accumulators, 4 panel vectors and 2 broadcasts of A
 * (14 of V8's 15 vector registers). An odd last row runs the tile with both rows the same.
 */
export const NR64 = 8;

const accs = range(2).flatMap((r) => range(4).map((v) => `c${r}${v}`));

/** tile64(a0, a1, b, k, c0, c1, bias, nv, slope): rows a0 and a1 of A against one panel. */
const tile = `
  (func $tile64 (param $a0 i32) (param $a1 i32) (param $b i32) (param $k i32) (param $c0 i32)
      (param $c1 i32) (param $bias i32) (param $nv i32) (param $slope f32)
    ${locals('v128', ...accs, 'b0', 'b1', 'b2', 'b3', 'x0', 'x1', 'slopev', 'floorv', 'v')}
    (local $kk i32)
    ${range(4)
      .map(
        (v) => `(local.set $c0${v} (v128.load offset=${v * 16} (local.get $bias)))
    (local.set $c1${v} (local.get $c0${v}))`,
      )
      .join('\n    ')}
    (block $done (loop $ks
      (br_if $done (i32.ge_u (local.get $kk) (local.get $k)))
      (local.set $x0 (f64x2.splat (f64.promote_f32 (f32.load (local.get $a0)))))
      (local.set $x1 (f64x2.splat (f64.promote_f32 (f32.load (local.get $a1)))))
      ${range(4)
        .map((v) => `(local.set $b${v} (v128.load offset=${v * 16} (local.get $b)))`)
        .join('\n      ')}
      ${range(2)
        .flatMap((r) =>
          range(4).map(
            (v) =>
              `(local.set $c${r}${v} (f64x2.add (local.get $c${r}${v}) (f64x2.mul (local.get $x${r}) (local.get $b${v}))))`,
          ),
        )
        .join('\n      ')}
      (local.set $a0 (i32.add (local.get $a0) (i32.const 4)))
      (local.set $a1 (i32.add (local.get $a1) (i32.const 4)))
      (local.set $b (i32.add (local.get $b) (i32.const ${NR64 * 8})))
      (local.set $kk (i32.add (local.get $kk) (i32.const 1)))
      (br $ks)))
    ${epilogueInit}
    ${range(2)
      .map(
        (r) => `(local.set $v ${demotePair(`(local.get $c${r}0)`, `(local.get $c${r}1)`)})
    (local.set $v ${epilogue('(local.get $v)')})
    (call $store_partial (local.get $c${r}) (local.get $v) (local.get $nv))
    (local.set $v ${demotePair(`(local.get $c${r}2)`, `(local.get $c${r}3)`)})
    (local.set $v ${epilogue('(local.get $v)')})
    (call $store_partial (i32.add (local.get $c${r}) (i32.const 16)) (local.get $v)
      (i32.sub (local.get $nv) (i32.const 4)))`,
      )
      .join('\n    ')})`;

/** gemm64(M, N, K, a, lda, b, bias, c, ldc, slope): C = epilogue(A·B + bias), see above. */
const gemm64 = `
  (func $gemm64 (export "gemm64") (param $m i32) (param $n i32) (param $k i32)
      (param $a i32) (param $lda i32) (param $b i32) (param $bias i32) (param $c i32)
      (param $ldc i32) (param $slope f32)
    ${locals('i32', 'pb', 'np', 'p', 'i', 'i1')}
    (local.set $pb (i32.mul (local.get $k) (i32.const ${NR64 * 8})))
    (local.set $np (i32.shr_u (i32.add (local.get $n) (i32.const ${NR64 - 1})) (i32.const 3)))
    (local.set $i (i32.const 0))
    (block $rows_done (loop $rows
      (br_if $rows_done (i32.ge_u (local.get $i) (local.get $m)))
      (local.set $i1 (i32.add (local.get $i) (i32.const 1)))
      (if (i32.ge_u (local.get $i1) (local.get $m)) (then (local.set $i1 (local.get $i))))
      (local.set $p (i32.const 0))
      (block $panels_done (loop $panels
        (br_if $panels_done (i32.ge_u (local.get $p) (local.get $np)))
        (call $tile64
          (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $lda)))
          (i32.add (local.get $a) (i32.mul (local.get $i1) (local.get $lda)))
          (i32.add (local.get $b) (i32.mul (local.get $p) (local.get $pb))) (local.get $k)
          (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldc)))
            (i32.shl (local.get $p) (i32.const 5)))
          (i32.add (i32.add (local.get $c) (i32.mul (local.get $i1) (local.get $ldc)))
            (i32.shl (local.get $p) (i32.const 5)))
          (i32.add (local.get $bias) (i32.shl (local.get $p) (i32.const 6)))
          (i32.sub (local.get $n) (i32.shl (local.get $p) (i32.const 3)))
          (local.get $slope))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $panels)))
      (local.set $i (i32.add (local.get $i) (i32.const 2)))
      (br $rows)))
  )`;

/** Bytes of B packed for K×N (float64). */
export const packedBytes64 = (k: number, n: number): number => Math.ceil(n / NR64) * NR64 * k * 8;

/**
 * Packs W [N, K] (row-major float32, a Linear's weight) as gemm64's B = Wᵀ into `out` (float64
 * elements of packedBytes64(K, N) bytes).
 */
export function packWeight64(weight: Float32Array, k: number, n: number, out: Float64Array): void {
  const panels = Math.ceil(n / NR64);
  let at = 0;
  for (let p = 0; p < panels; p++) {
    for (let kk = 0; kk < k; kk++) {
      for (let j = 0; j < NR64; j++, at++) {
        const col = p * NR64 + j;
        out[at] = col < n ? weight[col * k + kk]! : 0;
      }
    }
  }
}

export function gemm64Wat(): string {
  return [tile, gemm64].join('\n');
}
