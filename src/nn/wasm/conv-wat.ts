import type { WindowGeometry } from '../conv-geometry.js';
import { NR } from './gemm-wat.js';
import { locals } from './wat-text.js';

/**
 * A Conv2d on the engine's GEMM, one sample at a time, with no im2col matrix in between: the
 * windows are packed straight into the GEMM's B panels and the weights are its A, so
 *
 *   out[o, p] = epilogue(bias[o] + Σ_k W[o, k]·cols[k, p])      o < C_out, p < H_out·W_out,
 *
 * k = (c, i, j) in the order of a [C_out, C, kh, kw] weight row — the product lands in the sample's
 * [C_out, H_out, W_out] layout (NCHW) as it is stored, with no transpose, and bias + activation in
 * the GEMM's store (`gemm_rowbias`: the bias is per row of C, one per output channel).
 *
 * Packing: with padding, the sample is first copied into the interior of a zeroed
 * [C, H + 2·ph, W + 2·pw] plane (zeroed once per call: only interiors are ever written), so every
 * window element is an address: cols[k, p] = plane[koff[k] + off[p]], koff[k] the offset of
 * (c, i·dh, j·dw) and off[p] that of the window's corner (oh·sh, ow·sw). A panel holds 8 positions
 * (NR) as two groups of 4 lanes; where a group's 4 positions are consecutive in the plane (stride 1,
 * one output row) a row of it is one vector load, else four scalar loads. Lanes beyond the last
 * position read the plane's first element: their columns are never stored. Each panel is packed
 * and multiplied at once (one GEMM call of N ≤ 8 per panel), so it is read back from L1.
 */

/** The descriptor of a convolution in linear memory: i32 words. */
export const CONV = {
  channels: 0,
  inH: 1,
  inW: 2,
  outChannels: 3,
  /** H_out·W_out. */
  positions: 4,
  /** C·kh·kw: the GEMM's K. */
  k: 5,
  padH: 6,
  padW: 7,
  /** The padded plane's rows and columns (H + 2·ph, W + 2·pw). */
  planeH: 8,
  planeW: 9,
  /** Addresses: weight [C_out, K] row-major, bias [C_out], koff [K] i32, lane groups. */
  weight: 10,
  bias: 11,
  koff: 12,
  lanes: 13,
  /** Where the packed panels start in the scratch, after the padded plane (bytes). */
  panelsAt: 14,
  bytes: 64,
} as const;

/** A lane group's record: contiguous flag, then the 4 lanes' byte offsets in the plane. */
const LANE_GROUP_BYTES = 32;

/** Whether the convolution needs the padded copy of its input. */
const isPadded = (g: WindowGeometry): boolean => g.padding[0] > 0 || g.padding[1] > 0;

/** The byte sizes of a convolution's tables and scratch. */
export function convSizes(g: WindowGeometry): {
  koffBytes: number;
  lanesBytes: number;
  /** Per-thread scratch: the padded plane (if any) and one packed panel. */
  scratchBytes: number;
  panelsAt: number;
} {
  const k = g.channels * g.kernel[0] * g.kernel[1];
  const panels = Math.ceil((g.outH * g.outW) / NR);
  const plane = isPadded(g)
    ? g.channels * (g.inH + 2 * g.padding[0]) * (g.inW + 2 * g.padding[1]) * 4
    : 0;
  const panelsAt = Math.ceil(plane / 64) * 64;
  return {
    koffBytes: k * 4,
    lanesBytes: panels * 2 * LANE_GROUP_BYTES,
    scratchBytes: panelsAt + k * NR * 4,
    panelsAt,
  };
}

/**
 * Writes a convolution's descriptor at `at` and its tables at `koff` and `lanes` (sizes from
 * convSizes); `weight` and `bias` are where its [C_out, K] weight and [C_out] bias already are.
 */
export function writeConvDescriptor(
  memory: ArrayBufferLike,
  at: number,
  g: WindowGeometry,
  outChannels: number,
  addresses: { weight: number; bias: number; koff: number; lanes: number },
): void {
  const words = new Int32Array(memory);
  const [kh, kw] = g.kernel;
  const [sh, sw] = g.stride;
  const [ph, pw] = g.padding;
  const [dh, dw] = g.dilation;
  const padded = isPadded(g);
  const planeH = padded ? g.inH + 2 * ph : g.inH;
  const planeW = padded ? g.inW + 2 * pw : g.inW;
  const positions = g.outH * g.outW;
  const k = g.channels * kh * kw;
  const d = at >>> 2;
  words[d + CONV.channels] = g.channels;
  words[d + CONV.inH] = g.inH;
  words[d + CONV.inW] = g.inW;
  words[d + CONV.outChannels] = outChannels;
  words[d + CONV.positions] = positions;
  words[d + CONV.k] = k;
  words[d + CONV.padH] = padded ? ph : 0;
  words[d + CONV.padW] = padded ? pw : 0;
  words[d + CONV.planeH] = planeH;
  words[d + CONV.planeW] = planeW;
  words[d + CONV.weight] = addresses.weight;
  words[d + CONV.bias] = addresses.bias;
  words[d + CONV.koff] = addresses.koff;
  words[d + CONV.lanes] = addresses.lanes;
  words[d + CONV.panelsAt] = convSizes(g).panelsAt;
  // koff: (c, i, j) → the byte offset of (c, i·dh, j·dw) in the plane.
  let w = addresses.koff >>> 2;
  for (let c = 0; c < g.channels; c++)
    for (let i = 0; i < kh; i++)
      for (let j = 0; j < kw; j++) words[w++] = ((c * planeH + i * dh) * planeW + j * dw) * 4;
  // Lane groups: the byte offset of each position's window corner (oh·sh, ow·sw) in the plane
  // (in padded coordinates, so the corner of output (0, 0) is the plane's (0, 0)).
  const offset = (p: number) =>
    p < positions ? (Math.floor(p / g.outW) * sh * planeW + (p % g.outW) * sw) * 4 : 0;
  const groups = Math.ceil(positions / NR) * 2;
  for (let group = 0; group < groups; group++) {
    const r = (addresses.lanes + group * LANE_GROUP_BYTES) >>> 2;
    const o = [0, 1, 2, 3].map((lane) => offset(group * 4 + lane));
    const contiguous = group * 4 + 3 < positions && o.every((v, lane) => v === o[0]! + lane * 4);
    words[r] = contiguous ? 1 : 0;
    for (let lane = 0; lane < 4; lane++) words[r + 1 + lane] = o[lane]!;
  }
}

const word = (index: number) => `(i32.load offset=${index * 4} (local.get $d))`;

/**
 * conv2d(desc, src, dst, rows, slope, tmp, scratch): `rows` samples [C, H, W] at src into
 * [C_out, H_out, W_out] at dst, epilogue slope as the GEMM's (1: none, −0: ReLU); tmp is the GEMM's
 * tile scratch, scratch the convolution's (convSizes().scratchBytes).
 */
const conv2d = `
  (func $conv2d (export "conv2d") (param $d i32) (param $src i32) (param $dst i32) (param $rows i32)
      (param $slope f32) (param $tmp i32) (param $scratch i32)
    ${locals('i32', 'cin', 'inH', 'inW', 'ph', 'pw', 'planeW', 'planeH', 'k', 'positions', 'outc')}
    ${locals('i32', 'inBytes', 'outBytes', 'padded', 'panels', 'base', 'x', 's', 'c', 'h', 'j')}
    ${locals('i32', 'prow', 'xrow', 'groups', 'g', 'rec', 'dstg', 'kk', 'kend', 'kb', 'o0', 'o1', 'o2', 'o3', 'q', 'nq')}
    (local.set $cin ${word(CONV.channels)})
    (local.set $inH ${word(CONV.inH)})
    (local.set $inW ${word(CONV.inW)})
    (local.set $ph ${word(CONV.padH)})
    (local.set $pw ${word(CONV.padW)})
    (local.set $planeH ${word(CONV.planeH)})
    (local.set $planeW ${word(CONV.planeW)})
    (local.set $k ${word(CONV.k)})
    (local.set $positions ${word(CONV.positions)})
    (local.set $outc ${word(CONV.outChannels)})
    (local.set $inBytes (i32.shl (i32.mul (local.get $cin) (i32.mul (local.get $inH) (local.get $inW))) (i32.const 2)))
    (local.set $outBytes (i32.shl (i32.mul (local.get $outc) (local.get $positions)) (i32.const 2)))
    (local.set $padded (i32.or (local.get $ph) (local.get $pw)))
    (local.set $panels (i32.add (local.get $scratch) ${word(CONV.panelsAt)}))
    (local.set $groups (i32.shl (i32.shr_u (i32.add (local.get $positions) (i32.const ${NR - 1})) (i32.const 3)) (i32.const 1)))
    (if (local.get $padded) (then
      (memory.fill (local.get $scratch) (i32.const 0)
        (i32.shl (i32.mul (local.get $cin) (i32.mul (local.get $planeH) (local.get $planeW))) (i32.const 2)))))
    (block $samples_done (loop $samples
      (br_if $samples_done (i32.ge_u (local.get $s) (local.get $rows)))
      (local.set $x (i32.add (local.get $src) (i32.mul (local.get $s) (local.get $inBytes))))
      (local.set $base (local.get $x))
      (if (local.get $padded) (then
        ;; The sample into the plane's interior, row by row: vectors, then the rest one by one.
        (local.set $base (local.get $scratch))
        (local.set $xrow (local.get $x))
        (local.set $c (i32.const 0))
        (block $c_done (loop $cs
          (br_if $c_done (i32.ge_u (local.get $c) (local.get $cin)))
          (local.set $h (i32.const 0))
          (block $h_done (loop $hs
            (br_if $h_done (i32.ge_u (local.get $h) (local.get $inH)))
            (local.set $prow (i32.add (local.get $scratch) (i32.shl (i32.add
              (i32.mul (i32.add (i32.mul (local.get $c) (local.get $planeH)) (i32.add (local.get $h) (local.get $ph)))
                (local.get $planeW))
              (local.get $pw)) (i32.const 2))))
            (local.set $j (i32.const 0))
            (block $v_done (loop $vs
              (br_if $v_done (i32.gt_u (i32.add (local.get $j) (i32.const 4)) (local.get $inW)))
              (v128.store (i32.add (local.get $prow) (i32.shl (local.get $j) (i32.const 2)))
                (v128.load (i32.add (local.get $xrow) (i32.shl (local.get $j) (i32.const 2)))))
              (local.set $j (i32.add (local.get $j) (i32.const 4)))
              (br $vs)))
            (block $t_done (loop $ts
              (br_if $t_done (i32.ge_u (local.get $j) (local.get $inW)))
              (f32.store (i32.add (local.get $prow) (i32.shl (local.get $j) (i32.const 2)))
                (f32.load (i32.add (local.get $xrow) (i32.shl (local.get $j) (i32.const 2)))))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $ts)))
            (local.set $xrow (i32.add (local.get $xrow) (i32.shl (local.get $inW) (i32.const 2))))
            (local.set $h (i32.add (local.get $h) (i32.const 1)))
            (br $hs)))
          (local.set $c (i32.add (local.get $c) (i32.const 1)))
          (br $cs)))))
      ;; Panel by panel: pack its 8 positions (two lane groups, g = 2q and 2q + 1; one row per k),
      ;; then the GEMM of every output channel against it while it is in L1.
      (local.set $kend (i32.add ${word(CONV.koff)} (i32.shl (local.get $k) (i32.const 2))))
      (local.set $g (i32.const 0))
      (block $g_done (loop $gs
        (br_if $g_done (i32.ge_u (local.get $g) (local.get $groups)))
        (local.set $rec (i32.add ${word(CONV.lanes)} (i32.shl (local.get $g) (i32.const 5))))
        (local.set $dstg (i32.add (local.get $panels) (i32.shl (i32.and (local.get $g) (i32.const 1)) (i32.const 4))))
        (local.set $kk ${word(CONV.koff)})
        (local.set $o0 (i32.add (local.get $base) (i32.load offset=4 (local.get $rec))))
        (if (i32.load (local.get $rec))
          (then
            (loop $vk
              (v128.store (local.get $dstg)
                (v128.load (i32.add (local.get $o0) (i32.load (local.get $kk)))))
              (local.set $dstg (i32.add (local.get $dstg) (i32.const ${NR * 4})))
              (local.set $kk (i32.add (local.get $kk) (i32.const 4)))
              (br_if $vk (i32.lt_u (local.get $kk) (local.get $kend)))))
          (else
            (local.set $o1 (i32.add (local.get $base) (i32.load offset=8 (local.get $rec))))
            (local.set $o2 (i32.add (local.get $base) (i32.load offset=12 (local.get $rec))))
            (local.set $o3 (i32.add (local.get $base) (i32.load offset=16 (local.get $rec))))
            (loop $sk
              (local.set $kb (i32.load (local.get $kk)))
              (f32.store (local.get $dstg) (f32.load (i32.add (local.get $o0) (local.get $kb))))
              (f32.store offset=4 (local.get $dstg) (f32.load (i32.add (local.get $o1) (local.get $kb))))
              (f32.store offset=8 (local.get $dstg) (f32.load (i32.add (local.get $o2) (local.get $kb))))
              (f32.store offset=12 (local.get $dstg) (f32.load (i32.add (local.get $o3) (local.get $kb))))
              (local.set $dstg (i32.add (local.get $dstg) (i32.const ${NR * 4})))
              (local.set $kk (i32.add (local.get $kk) (i32.const 4)))
              (br_if $sk (i32.lt_u (local.get $kk) (local.get $kend))))))
        (if (i32.and (local.get $g) (i32.const 1)) (then
          ;; Columns 8q … 8q + 7 of the sample's [C_out, positions] output (fewer in the last panel).
          (local.set $q (i32.shl (i32.shr_u (local.get $g) (i32.const 1)) (i32.const 3)))
          (local.set $nq (i32.sub (local.get $positions) (local.get $q)))
          (if (i32.gt_u (local.get $nq) (i32.const ${NR})) (then (local.set $nq (i32.const ${NR}))))
          (call $gemm_rowbias (local.get $outc) (local.get $nq) (local.get $k)
            ${word(CONV.weight)} (i32.shl (local.get $k) (i32.const 2)) (local.get $panels)
            ${word(CONV.bias)}
            (i32.add (i32.add (local.get $dst) (i32.mul (local.get $s) (local.get $outBytes)))
              (i32.shl (local.get $q) (i32.const 2)))
            (i32.shl (local.get $positions) (i32.const 2)) (local.get $slope) (local.get $tmp))))
        (local.set $g (i32.add (local.get $g) (i32.const 1)))
        (br $gs)))
      (local.set $s (i32.add (local.get $s) (i32.const 1)))
      (br $samples))))`;

/** The convolution's module fields; needs the GEMM's row-bias variant (gemmWat's rowBias). */
export function convWat(): string {
  return conv2d;
}
