import { FLOAT32_MAX } from '../tensor.js';
import { locals, range } from './wat-text.js';

/**
 * The GEMM of the engine, as WebAssembly text:
 *
 *   C[m, n] = epilogue(bias[n] + Σ_k A[m, k]·B[k, n])   for m < M, n < N, k < K (K ≥ 1),
 *   epilogue(v) = v < 0 ? v·slope : v
 *
 * A is row-major with a row stride of `lda` bytes (unit stride along k), C row-major with a row
 * stride of `ldc` bytes, B packed by `pack_b` into panels of NR columns: panel p holds
 * B[k, p·NR + j] at ((p·K + k)·NR + j)·4, zero beyond N, so a panel is one contiguous stream. The
 * bias is padded with zeros to a multiple of NR. The epilogue is applied to the accumulators as
 * they are stored: slope 1 is the identity, −0 ReLU (RELU_SLOPE: a negative v times −0 is +0, as
 * torch.relu gives it; ReLU(−∞) is +0, see `epilogue`), any other slope LeakyReLU (+0:
 * LeakyReLU(0), whose v·0 is −0 as torch's); other activations run as a pass afterwards.
 *
 * Register blocking: a 4×8 tile keeps 8 f32x4 accumulators, 2 panel vectors and one broadcast of A
 * in registers (V8 allocates 15 of the 16 x64 vector registers; wider tiles spill). Rows left over
 * (and a batch of one) use a 1×32 tile over four panels, again 8 accumulators.
 *
 * Every tile computes each output the same way — the accumulator starts at the bias and adds
 * A[m, k]·B[k, n] for k = 0, 1, …, K−1 in order — so a row's result does not depend on which tile,
 * chunk or thread computed it: splitting a batch across threads is bit-for-bit identical.
 */
export const MR = 4;
export const NR = 8;

const ZERO = '(v128.const i32x4 0 0 0 0)';

/** acc + a·b, fused (one rounding) when relaxed SIMD is available. */
const madd = (relaxed: boolean, a: string, b: string, acc: string): string =>
  relaxed ? `(f32x4.relaxed_madd ${a} ${b} ${acc})` : `(f32x4.add ${acc} (f32x4.mul ${a} ${b}))`;

/**
 * The epilogue slope of ReLU: −0, so that a negative v·slope is +0 (torch.relu's zero), where
 * LeakyReLU(0)'s slope +0 gives −0 (torch's v·0). Callers pass this (program-wat.ts).
 */
export const RELU_SLOPE = -0;

/**
 * The epilogue, v < 0 ? max(v, floor)·slope : v, on a vector `v` (a local.get: it is read
 * three times), with $slopev and $floorv set by epilogueInit. Only a negative v is scaled, so ±0
 * and NaN pass unchanged: torch.relu(−0) is −0 (clamp_min(x, 0) is max(0, x) as maxps computes
 * it, 0 > x ? 0 : x), and so are the identity's and LeakyReLU's −0. A negative v's product has
 * torch's sign: ReLU's slope −0 gives +0; LeakyReLU's v·slope is −0 where it underflows, and
 * LeakyReLU(0)'s (slope +0) is −0, as torch's leaky_relu (x > 0 ? x : x·slope) gives them. The
 * floor is −FLOAT32_MAX for ReLU and −∞ otherwise: a value that overflowed to −∞ before a ReLU
 * becomes +0, as torch.relu gives it, where −∞·0 would be NaN; LeakyReLU keeps −∞·slope = −∞,
 * and LeakyReLU(0) gives −∞·0 = NaN, as torch does, not ReLU's +0. NaN stays NaN: NaN < 0 is
 * false. Also the epilogue of the float64 GEMM and of the statistics taps (gemm64-wat.ts,
 * statistics-wat.ts).
 */
export const epilogue = (v: string): string =>
  `(v128.bitselect (f32x4.mul (f32x4.pmax ${v} (local.get $floorv)) (local.get $slopev)) ${v} (f32x4.lt ${v} ${ZERO}))`;

/** The epilogue on one f32 value `f` (a local.get), with $slope and the lanes of $floorv. */
export const epilogueScalar = (f: string): string =>
  `(select (f32.mul (f32.max ${f} (f32x4.extract_lane 0 (local.get $floorv))) (local.get $slope))
    ${f} (f32.lt ${f} (f32.const 0)))`;

/**
 * Sets the epilogue's $slopev and $floorv (v128 locals) from the f32 $slope: ReLU's floor when its
 * bits are those of −0 (RELU_SLOPE; +0 is LeakyReLU(0), see `epilogue`).
 */
export const epilogueInit = `(local.set $slopev (f32x4.splat (local.get $slope)))
    (local.set $floorv (f32x4.splat (select (f32.const ${-FLOAT32_MAX}) (f32.const -inf)
      (i32.eq (i32.reinterpret_f32 (local.get $slope)) (i32.const 0x80000000)))))`;

interface Accumulator {
  name: string;
  row: number;
  /** First column of its vector within the tile. */
  col: number;
}

/**
 * Applies the epilogue to a tile's accumulators and stores them: straight into C when all of the
 * tile's `width` columns are valid ($nv ≥ width), else into the 128 bytes at $tmp and from there
 * the valid columns only. The accumulators are dead by the time copy_tile is called — a call while
 * they were live would make V8 keep them in memory across the whole inner loop.
 */
const storeTile = (accs: Accumulator[], width: number, rows: number): string => {
  const rowAt = (row: number) =>
    row === 0
      ? '(local.get $c)'
      : `(i32.add (local.get $c) (i32.mul (local.get $ldc) (i32.const ${row})))`;
  return `
    ${epilogueInit}
    ${accs.map((a) => `(local.set $${a.name} ${epilogue(`(local.get $${a.name})`)})`).join('\n')}
    (if (i32.ge_s (local.get $nv) (i32.const ${width}))
      (then ${accs.map((a) => `(v128.store offset=${a.col * 4} ${rowAt(a.row)} (local.get $${a.name}))`).join(' ')})
      (else
        ${accs.map((a) => `(v128.store offset=${(a.row * width + a.col) * 4} (local.get $tmp) (local.get $${a.name}))`).join(' ')}
        (call $copy_tile (local.get $tmp) (i32.const ${width}) (local.get $c) (local.get $ldc)
          (i32.const ${rows}) (local.get $nv))))`;
};

/** copy_tile(src, width, dst, ldc, rows, cols): the first `cols` columns of a rows × width tile. */
const copyTile = `
  (func $copy_tile (param $src i32) (param $w i32) (param $dst i32) (param $ldc i32) (param $rows i32)
      (param $cols i32)
    ${locals('i32', 'r', 'j')}
    (block $rows_done (loop $rows_next
      (br_if $rows_done (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $j (i32.const 0))
      (block $cols_done (loop $cols_next
        (br_if $cols_done (i32.ge_s (local.get $j) (local.get $cols)))
        (f32.store (i32.add (local.get $dst) (i32.shl (local.get $j) (i32.const 2)))
          (f32.load (i32.add (local.get $src)
            (i32.shl (i32.add (i32.mul (local.get $r) (local.get $w)) (local.get $j)) (i32.const 2)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br $cols_next)))
      (local.set $dst (i32.add (local.get $dst) (local.get $ldc)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rows_next))))`;

/** Bytes of the scratch tile a GEMM call needs (the widest tile: 4 × 8 or 1 × 32 floats). */
export const TILE_SCRATCH_BYTES = 128;

/**
 * Cache blocking of the driver: row blocks of GEMM_MC rows (the block of A they read stays in L1/L2
 * while every panel of B passes over it) and, within a block, K in slices of GEMM_KC (a panel
 * slice, GEMM_KC × 32 bytes, stays in L1 for all the block's row tiles). Between K slices a tile's
 * accumulators go to C and come back — float32 values stored and reloaded exactly, k still in
 * order — so blocking never changes a result.
 */
export const GEMM_MC = 64;
export const GEMM_KC = 256;

/** The tile's `mode`: start from C instead of the bias; apply the epilogue (the last K slice). */
const ACCUMULATE = 1;
const LAST = 2;

/**
 * The bias the accumulators start from: per column of C (a Linear: bias[n], NR-padded), or per
 * row (a convolution computing [out_channels, positions]: bias[m]).
 */
type BiasKind = 'column' | 'row';

/** Names of a variant's functions: `gemm` and its tiles, or `gemm_rowbias` and theirs. */
const suffix = (bias: BiasKind): string => (bias === 'row' ? '_rowbias' : '');

function tile4x8(relaxed: boolean, bias: BiasKind): string {
  const acc = range(MR).flatMap((i) => range(2).map((j) => `c${i}_${j}`));
  const rowPtr = (i: number) => (i === 0 ? 'a' : `a${i}`);
  const cRow = (i: number) =>
    i === 0
      ? '(local.get $c)'
      : `(i32.add (local.get $c) (i32.mul (local.get $ldc) (i32.const ${i})))`;
  const k = range(MR)
    .map(
      (i) => `(local.set $x (v128.load32_splat (local.get $${rowPtr(i)})))
      ${range(2)
        .map(
          (j) =>
            `(local.set $c${i}_${j} ${madd(relaxed, '(local.get $x)', `(local.get $b${j})`, `(local.get $c${i}_${j})`)})`,
        )
        .join('\n')}`,
    )
    .join('\n');
  const init =
    bias === 'column'
      ? `(local.set $b0 (v128.load (local.get $bias)))
    (local.set $b1 (v128.load offset=16 (local.get $bias)))
    ${acc.map((c) => `(local.set $${c} (local.get $b${c.at(-1)}))`).join(' ')}`
      : range(MR)
          .map(
            (i) => `(local.set $c${i}_0 (v128.load32_splat offset=${4 * i} (local.get $bias)))
    (local.set $c${i}_1 (local.get $c${i}_0))`,
          )
          .join('\n');
  return `
  (func $tile4x8${suffix(bias)} (param $a i32) (param $lda i32) (param $bp i32) (param $k i32)
      (param $c i32) (param $ldc i32) (param $bias i32) (param $nv i32) (param $slope f32)
      (param $tmp i32) (param $mode i32)
    ${locals('v128', ...acc, 'b0', 'b1', 'x', 'slopev', 'floorv')}
    ${locals('i32', 'a1', 'a2', 'a3', 'end')}
    ${init}
    (if (i32.and (local.get $mode) (i32.const ${ACCUMULATE})) (then
      ${acc.map((c) => `(local.set $${c} (v128.load offset=${16 * Number(c.at(-1))} ${cRow(Number(c[1]))}))`).join('\n      ')}))
    (local.set $a1 (i32.add (local.get $a) (local.get $lda)))
    (local.set $a2 (i32.add (local.get $a1) (local.get $lda)))
    (local.set $a3 (i32.add (local.get $a2) (local.get $lda)))
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $k) (i32.const 2))))
    (loop $k
      (local.set $b0 (v128.load (local.get $bp)))
      (local.set $b1 (v128.load offset=16 (local.get $bp)))
      ${k}
      ${range(MR)
        .map((i) => `(local.set $${rowPtr(i)} (i32.add (local.get $${rowPtr(i)}) (i32.const 4)))`)
        .join(' ')}
      (local.set $bp (i32.add (local.get $bp) (i32.const ${NR * 4})))
      (br_if $k (i32.lt_u (local.get $a) (local.get $end))))
    (if (i32.eqz (i32.and (local.get $mode) (i32.const ${LAST}))) (then
      ;; An earlier K slice of a whole panel: the raw sums, for the next slice to continue.
      ${acc.map((c) => `(v128.store offset=${16 * Number(c.at(-1))} ${cRow(Number(c[1]))} (local.get $${c}))`).join('\n      ')}
      (return)))
    ${storeTile(
      range(MR).flatMap((i) => range(2).map((j) => ({ name: `c${i}_${j}`, row: i, col: 4 * j }))),
      NR,
      MR,
    )})`;
}

/** One row against four consecutive panels (32 columns); $pb is the panel size in bytes. */
function tile1x32(relaxed: boolean, bias: BiasKind): string {
  const acc = range(4).flatMap((p) => range(2).map((j) => `c${p}_${j}`));
  const init =
    bias === 'column'
      ? acc
          .map(
            (c) =>
              `(local.set $${c} (v128.load offset=${32 * Number(c[1]) + 16 * Number(c.at(-1))} (local.get $bias)))`,
          )
          .join(' ')
      : `(local.set $c0_0 (v128.load32_splat (local.get $bias)))
    ${acc
      .slice(1)
      .map((c) => `(local.set $${c} (local.get $c0_0))`)
      .join(' ')}`;
  return `
  (func $tile1x32${suffix(bias)} (param $a i32) (param $bp i32) (param $pb i32) (param $k i32)
      (param $c i32) (param $bias i32) (param $nv i32) (param $slope f32) (param $tmp i32)
    ${locals('v128', ...acc, 'x', 'slopev', 'floorv')}
    (local $ldc i32)
    ${locals('i32', 'q1', 'q2', 'q3', 'end')}
    ${init}
    (local.set $q1 (i32.add (local.get $bp) (local.get $pb)))
    (local.set $q2 (i32.add (local.get $q1) (local.get $pb)))
    (local.set $q3 (i32.add (local.get $q2) (local.get $pb)))
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $k) (i32.const 2))))
    (loop $k
      (local.set $x (v128.load32_splat (local.get $a)))
      ${acc
        .map((c) => {
          const p = Number(c[1]);
          const ptr = p === 0 ? 'bp' : `q${p}`;
          const b = `(v128.load offset=${16 * Number(c.at(-1))} (local.get $${ptr}))`;
          return `(local.set $${c} ${madd(relaxed, '(local.get $x)', b, `(local.get $${c})`)})`;
        })
        .join('\n')}
      (local.set $a (i32.add (local.get $a) (i32.const 4)))
      ${['bp', 'q1', 'q2', 'q3'].map((q) => `(local.set $${q} (i32.add (local.get $${q}) (i32.const ${NR * 4})))`).join(' ')}
      (br_if $k (i32.lt_u (local.get $a) (local.get $end))))
    ${storeTile(
      acc.map((c) => ({ name: c, row: 0, col: 8 * Number(c[1]) + 4 * Number(c.at(-1)) })),
      4 * NR,
      1,
    )})`;
}

/** One row against one panel. */
function tile1x8(relaxed: boolean, bias: BiasKind): string {
  const init =
    bias === 'column'
      ? `(local.set $c0 (v128.load (local.get $bias)))
    (local.set $c1 (v128.load offset=16 (local.get $bias)))`
      : `(local.set $c0 (v128.load32_splat (local.get $bias)))
    (local.set $c1 (local.get $c0))`;
  return `
  (func $tile1x8${suffix(bias)} (param $a i32) (param $bp i32) (param $k i32)
      (param $c i32) (param $bias i32) (param $nv i32) (param $slope f32) (param $tmp i32)
    ${locals('v128', 'c0', 'c1', 'x', 'slopev', 'floorv')}
    (local $ldc i32)
    (local $end i32)
    ${init}
    (local.set $end (i32.add (local.get $a) (i32.shl (local.get $k) (i32.const 2))))
    (loop $k
      (local.set $x (v128.load32_splat (local.get $a)))
      (local.set $c0 ${madd(relaxed, '(local.get $x)', '(v128.load (local.get $bp))', '(local.get $c0)')})
      (local.set $c1 ${madd(relaxed, '(local.get $x)', '(v128.load offset=16 (local.get $bp))', '(local.get $c1)')})
      (local.set $a (i32.add (local.get $a) (i32.const 4)))
      (local.set $bp (i32.add (local.get $bp) (i32.const ${NR * 4})))
      (br_if $k (i32.lt_u (local.get $a) (local.get $end))))
    ${storeTile(
      [
        { name: 'c0', row: 0, col: 0 },
        { name: 'c1', row: 0, col: 4 },
      ],
      NR,
      1,
    )})`;
}

/**
 * gemm(M, N, K, A, lda, B packed, bias, C, ldc, slope, tmp): row blocks of GEMM_MC rows; in each,
 * the whole panels K slice by K slice (each slice over every panel, each panel over the block's
 * 4-row tiles), then the last, partial panel over the whole K; then the rows left over one by one
 * (four panels at a time, then one). tmp is TILE_SCRATCH_BYTES of the calling thread's scratch.
 * The row-bias variant (`gemm_rowbias`) differs only in where the accumulators start.
 */
function gemm(bias: BiasKind): string {
  const s = suffix(bias);
  /** The bias of the tile at rows $i, panel $p. */
  const biasAt =
    bias === 'column'
      ? '(i32.add (local.get $bias) (i32.shl (local.get $p) (i32.const 5)))'
      : '(i32.add (local.get $bias) (i32.shl (local.get $i) (i32.const 2)))';
  const tile = (kc: string, kOffset: string, mode: string) => `
        (call $tile4x8${s}
          (i32.add (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $lda))) ${kOffset})
          (local.get $lda)
          (i32.add (i32.add (local.get $b) (i32.mul (local.get $p) (local.get $pb)))
            (i32.shl ${kOffset} (i32.const 3)))
          ${kc}
          (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldc)))
            (i32.shl (local.get $p) (i32.const 5)))
          (local.get $ldc) ${biasAt}
          (i32.sub (local.get $n) (i32.shl (local.get $p) (i32.const 3)))
          (local.get $slope) (local.get $tmp) ${mode})`;
  return `
  (func $gemm${s} (export "gemm${s}") (param $m i32) (param $n i32) (param $k i32)
      (param $a i32) (param $lda i32) (param $b i32) (param $bias i32) (param $c i32)
      (param $ldc i32) (param $slope f32) (param $tmp i32)
    ${locals('i32', 'pb', 'np', 'fp', 'p', 'i', 'full', 'i0', 'i1', 'k0', 'kc', 'mode')}
    (local.set $pb (i32.mul (local.get $k) (i32.const ${NR * 4})))
    (local.set $np (i32.shr_u (i32.add (local.get $n) (i32.const ${NR - 1})) (i32.const 3)))
    (local.set $fp (i32.shr_u (local.get $n) (i32.const 3)))
    (local.set $full (i32.and (local.get $m) (i32.const ${-MR})))
    (block $blocks_done (loop $blocks
      (br_if $blocks_done (i32.ge_u (local.get $i0) (local.get $full)))
      (local.set $i1 (i32.add (local.get $i0) (i32.const ${GEMM_MC})))
      (if (i32.gt_u (local.get $i1) (local.get $full)) (then (local.set $i1 (local.get $full))))
      (local.set $k0 (i32.const 0))
      (block $slices_done (loop $slices
        (br_if $slices_done (i32.ge_u (local.get $k0) (local.get $k)))
        (local.set $kc (i32.sub (local.get $k) (local.get $k0)))
        (if (i32.gt_u (local.get $kc) (i32.const ${GEMM_KC})) (then (local.set $kc (i32.const ${GEMM_KC}))))
        (local.set $mode (i32.or
          (select (i32.const ${ACCUMULATE}) (i32.const 0) (local.get $k0))
          (select (i32.const ${LAST}) (i32.const 0)
            (i32.eq (i32.add (local.get $k0) (local.get $kc)) (local.get $k)))))
        (local.set $p (i32.const 0))
        (block $panels_done (loop $panels
          (br_if $panels_done (i32.ge_u (local.get $p) (local.get $fp)))
          (local.set $i (local.get $i0))
          (block $rows_done (loop $rows
            (br_if $rows_done (i32.ge_u (local.get $i) (local.get $i1)))
            ${tile('(local.get $kc)', '(i32.shl (local.get $k0) (i32.const 2))', '(local.get $mode)')}
            (local.set $i (i32.add (local.get $i) (i32.const ${MR})))
            (br $rows)))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $panels)))
        (local.set $k0 (i32.add (local.get $k0) (local.get $kc)))
        (br $slices)))
      (if (i32.lt_u (local.get $fp) (local.get $np)) (then
        (local.set $p (local.get $fp))
        (local.set $i (local.get $i0))
        (block $tail_done (loop $tail
          (br_if $tail_done (i32.ge_u (local.get $i) (local.get $i1)))
          ${tile('(local.get $k)', '(i32.const 0)', `(i32.const ${LAST})`)}
          (local.set $i (i32.add (local.get $i) (i32.const ${MR})))
          (br $tail)))))
      (local.set $i0 (local.get $i1))
      (br $blocks)))
    (local.set $i (local.get $full))
    (block $single_done (loop $single
      (br_if $single_done (i32.ge_u (local.get $i) (local.get $m)))
      (local.set $p (i32.const 0))
      (block $wide_done (loop $wide
        (br_if $wide_done (i32.gt_u (i32.add (local.get $p) (i32.const 4)) (local.get $np)))
        (call $tile1x32${s}
          (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $lda)))
          (i32.add (local.get $b) (i32.mul (local.get $p) (local.get $pb))) (local.get $pb)
          (local.get $k)
          (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldc)))
            (i32.shl (local.get $p) (i32.const 5)))
          ${biasAt}
          (i32.sub (local.get $n) (i32.shl (local.get $p) (i32.const 3)))
          (local.get $slope) (local.get $tmp))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $wide)))
      (block $narrow_done (loop $narrow
        (br_if $narrow_done (i32.ge_u (local.get $p) (local.get $np)))
        (call $tile1x8${s}
          (i32.add (local.get $a) (i32.mul (local.get $i) (local.get $lda)))
          (i32.add (local.get $b) (i32.mul (local.get $p) (local.get $pb))) (local.get $k)
          (i32.add (i32.add (local.get $c) (i32.mul (local.get $i) (local.get $ldc)))
            (i32.shl (local.get $p) (i32.const 5)))
          ${biasAt}
          (i32.sub (local.get $n) (i32.shl (local.get $p) (i32.const 3)))
          (local.get $slope) (local.get $tmp))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $narrow)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $single)))
  )`;
}

/**
 * pack_b(src, kStride, nStride, K, N, dst): B[k, n] = src[k·kStride + n·nStride] (strides in
 * bytes) into NR-column panels at dst, zero-padded to a whole panel. A Linear weight [out, in]
 * is B = Wᵀ: kStride 4, nStride 4·in.
 */
const packB = `
  (func $pack_b (export "pack_b") (param $src i32) (param $ks i32) (param $ns i32) (param $k i32)
      (param $n i32) (param $dst i32)
    ${locals('i32', 'p', 'np', 'kk', 'j', 'col')}
    (local.set $np (i32.shr_u (i32.add (local.get $n) (i32.const ${NR - 1})) (i32.const 3)))
    (block $pd (loop $pl
      (br_if $pd (i32.ge_u (local.get $p) (local.get $np)))
      (local.set $kk (i32.const 0))
      (block $kd (loop $kl
        (br_if $kd (i32.ge_u (local.get $kk) (local.get $k)))
        (local.set $j (i32.const 0))
        (block $jd (loop $jl
          (br_if $jd (i32.ge_u (local.get $j) (i32.const ${NR})))
          (local.set $col (i32.add (i32.shl (local.get $p) (i32.const 3)) (local.get $j)))
          (if (i32.lt_u (local.get $col) (local.get $n))
            (then (f32.store (local.get $dst) (f32.load (i32.add
              (i32.add (local.get $src) (i32.mul (local.get $kk) (local.get $ks)))
              (i32.mul (local.get $col) (local.get $ns))))))
            (else (f32.store (local.get $dst) (f32.const 0))))
          (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $jl)))
        (local.set $kk (i32.add (local.get $kk) (i32.const 1)))
        (br $kl)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $pl))))`;

/** Bytes of B packed for K×N. */
export const packedBytes = (k: number, n: number): number => Math.ceil(n / NR) * NR * k * 4;

/** The tiles and the driver of one bias variant. */
const variant = (relaxed: boolean, bias: BiasKind): string[] => [
  tile4x8(relaxed, bias),
  tile1x32(relaxed, bias),
  tile1x8(relaxed, bias),
  gemm(bias),
];

/**
 * The GEMM module fields: `gemm` (bias per column: Linear layers) and `pack_b`; with `rowBias`
 * also `gemm_rowbias` (same signature, bias per row of C: convolutions computed as
 * weight · columns, bias[m] for output channel m).
 */
export function gemmWat(relaxed: boolean, options: { rowBias?: boolean } = {}): string {
  return [
    copyTile,
    ...variant(relaxed, 'column'),
    ...(options.rowBias ? variant(relaxed, 'row') : []),
    packB,
  ].join('\n');
}
