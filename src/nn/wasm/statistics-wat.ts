import { promoteHigh } from './f64-lanes-wat.js';
import { epilogue, epilogueInit, epilogueScalar } from './gemm-wat.js';
import { locals } from './wat-text.js';

/**
 * channel_sums(src, rows, width, channels, acc, shift): adds Σ(x − K) and Σ(x − K)² per channel,
 * in float64, of a row-major [rows, width] float32 block whose rows are `channels` runs of
 * width/channels values (per feature: channels = width; per channel of [C, H, W]: runs of H·W),
 * K the channel's shift (f64 × channels at `shift`: statistics-probe.ts, ChannelSums, why). acc
 * holds the channels' sums (f64 × channels) followed by their sums of squares (f64 × channels).
 * Each float32 value is widened exactly and K subtracted in float64 (f64x2.sub: the JavaScript
 * executor's x − K, the same bits), so only the difference, its square and the sums round. Reads
 * only the block (no slack past a row) and the shifts, writes only acc.
 *
 * channel_sums_act(src, rows, width, channels, acc, shift, slope): the same sums of the block,
 * which then becomes v < 0 ? v·slope : v in place — the GEMM's epilogue (gemm-wat.ts: slope −0 is
 * ReLU, with ReLU(−∞) = +0; 1 the identity, others LeakyReLU, +0 LeakyReLU(0)), so a pre-activation tap
 * reads a step's values and activates them in one pass over the block instead of two (live drift
 * statistics on the served plan).
 *
 * channel_sums_clip(src, rows, width, channels, acc, shift, bounds) and
 * channel_sums_clip_act(…, bounds, slope): the same, each value winsorized first at its channel's bounds — bounds holds f32 ×
 * channels lower bounds then f32 × channels upper ones — as f32x4.pmin(f32x4.pmax(x, lower),
 * upper) + x·0, that is x < lower ? lower : upper < x ? upper : x for a finite x and NaN for ±∞
 * and NaN (x·0), as the JavaScript executor's addChannelSums: four instructions per four values
 * before they are widened. A value that overflowed inside the network keeps making the sums not
 * finite (live drift drops them, docs/drift.md) instead of counting as a bound. The activated
 * block keeps the values as they were (only the sums see the clipped ones).
 */

const hsum = (v: string) => `(f64.add (f64x2.extract_lane 0 ${v}) (f64x2.extract_lane 1 ${v}))`;

/**
 * The pieces of a sums kernel that differ when it also activates the block or clips its values:
 * the extra parameters and locals, the in-place store of a vector at $p (or $src), the clip of a
 * vector, and the load of a value.
 */
const variant = (act: boolean, clip: boolean) => ({
  name: `${clip ? '_clip' : ''}${act ? '_act' : ''}`,
  param: `${clip ? '(param $bounds i32)' : ''} ${act ? '(param $slope f32)' : ''}`,
  locals: `${act ? '(local $slopev v128) (local $floorv v128)' : ''} ${
    act || clip ? '(local $f f32)' : ''
  } ${clip ? '(local $lower v128) (local $higher v128) (local $lower1 f32) (local $higher1 f32) (local $upper i32) (local $g f32)' : ''}`,
  init: `${act ? epilogueInit : ''} ${
    clip
      ? '(local.set $upper (i32.add (local.get $bounds) (i32.shl (local.get $channels) (i32.const 2))))'
      : ''
  }`,
  storeVector: (at: string) => (act ? `(v128.store ${at} ${epilogue('(local.get $x)')})` : ''),
  /** $x winsorized at $lower, $higher (after it was stored activated). */
  clipVector: clip
    ? `(local.set $x (f32x4.add
          (f32x4.pmin (f32x4.pmax (local.get $x) (local.get $lower)) (local.get $higher))
          (f32x4.mul (local.get $x) (v128.const i32x4 0 0 0 0))))`
    : '',
  /** The bounds of channel `c` into $lower, $higher (splat: per channel) or of channels c … c+3. */
  loadBounds: (c: string, splat: boolean) => {
    if (!clip) return '';
    const at = (base: string) => `(i32.add (local.get ${base}) (i32.shl ${c} (i32.const 2)))`;
    return splat
      ? `(local.set $lower1 (f32.load ${at('$bounds')})) (local.set $higher1 (f32.load ${at('$upper')}))
          (local.set $lower (f32x4.splat (local.get $lower1))) (local.set $higher (f32x4.splat (local.get $higher1)))`
      : `(local.set $lower (v128.load ${at('$bounds')})) (local.set $higher (v128.load ${at('$upper')}))`;
  },
  /** The scalar bounds of channel `c` into $lower1, $higher1 (the per-feature tail). */
  loadScalarBounds: (c: string) =>
    clip
      ? `(local.set $lower1 (f32.load (i32.add (local.get $bounds) (i32.shl ${c} (i32.const 2)))))
          (local.set $higher1 (f32.load (i32.add (local.get $upper) (i32.shl ${c} (i32.const 2)))))`
      : '',
  /** Loads the value at `at` widened (and clipped) minus $k into $d, activating it in place. */
  loadValue: (at: string) => {
    const minusK = (v: string) => `(local.set $d (f64.sub (f64.promote_f32 ${v}) (local.get $k)))`;
    if (!act && !clip) return minusK(`(f32.load ${at})`);
    const store = act ? `(f32.store ${at} ${epilogueScalar('(local.get $f)')})` : '';
    if (!clip) return `(local.set $f (f32.load ${at})) ${store} ${minusK('(local.get $f)')}`;
    return `(local.set $f (f32.load ${at})) ${store}
          (local.set $g (select (local.get $lower1) (local.get $f) (f32.lt (local.get $f) (local.get $lower1))))
          (local.set $g (select (local.get $higher1) (local.get $g) (f32.lt (local.get $higher1) (local.get $g))))
          ${minusK('(f32.add (local.get $g) (f32.mul (local.get $f) (f32.const 0)))')}`;
  },
});

/**
 * Per feature: four channels at a time down the rows (their accumulators stay in registers over
 * the whole block, one strided load per row), then the channels left over one by one.
 */
const perFeature = (act: boolean, clip: boolean) => {
  const a = variant(act, clip);
  return `
  (func $feature_sums${a.name} (param $src i32) (param $rows i32) (param $width i32) (param $acc i32)
      (param $shift i32) ${a.param}
    ${locals('i32', 'c', 'r', 'p', 'stride', 'sq', 'channels')}
    ${locals('v128', 'x', 'lo', 'hi', 's0', 's1', 'q0', 'q1', 'k0', 'k1')}
    ${locals('f64', 's', 'q', 'd', 'k')} ${a.locals}
    (local.set $channels (local.get $width))
    ${a.init}
    (local.set $stride (i32.shl (local.get $width) (i32.const 2)))
    (local.set $sq (i32.add (local.get $acc) (i32.shl (local.get $width) (i32.const 3))))
    (block $vd (loop $vl
      (br_if $vd (i32.gt_s (i32.add (local.get $c) (i32.const 4)) (local.get $width)))
      (local.set $s0 (v128.const i32x4 0 0 0 0)) (local.set $s1 (v128.const i32x4 0 0 0 0))
      (local.set $q0 (v128.const i32x4 0 0 0 0)) (local.set $q1 (v128.const i32x4 0 0 0 0))
      (local.set $p (i32.add (local.get $src) (i32.shl (local.get $c) (i32.const 2))))
      (local.set $r (i32.const 0))
      ${a.loadBounds('(local.get $c)', false)}
      (local.set $k0 (v128.load (i32.add (local.get $shift) (i32.shl (local.get $c) (i32.const 3)))))
      (local.set $k1 (v128.load offset=16 (i32.add (local.get $shift) (i32.shl (local.get $c) (i32.const 3)))))
      (block $rd (loop $rl
        (br_if $rd (i32.ge_s (local.get $r) (local.get $rows)))
        (local.set $x (v128.load (local.get $p)))
        ${a.storeVector('(local.get $p)')}
        ${a.clipVector}
        (local.set $lo (f64x2.sub (f64x2.promote_low_f32x4 (local.get $x)) (local.get $k0)))
        (local.set $hi (f64x2.sub ${promoteHigh('(local.get $x)')} (local.get $k1)))
        (local.set $s0 (f64x2.add (local.get $s0) (local.get $lo)))
        (local.set $s1 (f64x2.add (local.get $s1) (local.get $hi)))
        (local.set $q0 (f64x2.add (local.get $q0) (f64x2.mul (local.get $lo) (local.get $lo))))
        (local.set $q1 (f64x2.add (local.get $q1) (f64x2.mul (local.get $hi) (local.get $hi))))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl)))
      (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 3))))
      (v128.store (local.get $p) (f64x2.add (v128.load (local.get $p)) (local.get $s0)))
      (v128.store offset=16 (local.get $p) (f64x2.add (v128.load offset=16 (local.get $p)) (local.get $s1)))
      (local.set $p (i32.add (local.get $sq) (i32.shl (local.get $c) (i32.const 3))))
      (v128.store (local.get $p) (f64x2.add (v128.load (local.get $p)) (local.get $q0)))
      (v128.store offset=16 (local.get $p) (f64x2.add (v128.load offset=16 (local.get $p)) (local.get $q1)))
      (local.set $c (i32.add (local.get $c) (i32.const 4)))
      (br $vl)))
    (block $td (loop $tl
      (br_if $td (i32.ge_s (local.get $c) (local.get $width)))
      (local.set $s (f64.const 0)) (local.set $q (f64.const 0))
      (local.set $p (i32.add (local.get $src) (i32.shl (local.get $c) (i32.const 2))))
      (local.set $r (i32.const 0))
      ${a.loadScalarBounds('(local.get $c)')}
      (local.set $k (f64.load (i32.add (local.get $shift) (i32.shl (local.get $c) (i32.const 3)))))
      (block $rd2 (loop $rl2
        (br_if $rd2 (i32.ge_s (local.get $r) (local.get $rows)))
        ${a.loadValue('(local.get $p)')}
        (local.set $s (f64.add (local.get $s) (local.get $d)))
        (local.set $q (f64.add (local.get $q) (f64.mul (local.get $d) (local.get $d))))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rl2)))
      (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 3))))
      (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) (local.get $s)))
      (local.set $p (i32.add (local.get $sq) (i32.shl (local.get $c) (i32.const 3))))
      (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) (local.get $q)))
      (local.set $c (i32.add (local.get $c) (i32.const 1)))
      (br $tl))))`;
};

/** Per channel of `spatial` consecutive values: each run summed in registers, then added to acc. */
const perChannel = (act: boolean, clip: boolean) => {
  const a = variant(act, clip);
  return `
  (func $run_sums${a.name} (param $src i32) (param $rows i32) (param $channels i32) (param $spatial i32)
      (param $acc i32) (param $shift i32) ${a.param}
    ${locals('i32', 'r', 'c', 'j', 'end', 'p', 'sq')}
    ${locals('v128', 'x', 'lo', 'hi', 's0', 's1', 'q0', 'q1', 'kv')}
    ${locals('f64', 's', 'q', 'd', 'k')} ${a.locals}
    ${a.init}
    (local.set $sq (i32.add (local.get $acc) (i32.shl (local.get $channels) (i32.const 3))))
    (block $rd (loop $rl
      (br_if $rd (i32.ge_s (local.get $r) (local.get $rows)))
      (local.set $c (i32.const 0))
      (block $cd (loop $cl
        (br_if $cd (i32.ge_s (local.get $c) (local.get $channels)))
        (local.set $s0 (v128.const i32x4 0 0 0 0)) (local.set $s1 (v128.const i32x4 0 0 0 0))
        (local.set $q0 (v128.const i32x4 0 0 0 0)) (local.set $q1 (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        ${a.loadBounds('(local.get $c)', true)}
        (local.set $k (f64.load (i32.add (local.get $shift) (i32.shl (local.get $c) (i32.const 3)))))
        (local.set $kv (f64x2.splat (local.get $k)))
        (block $vd (loop $vl
          (br_if $vd (i32.gt_s (i32.add (local.get $j) (i32.const 4)) (local.get $spatial)))
          (local.set $x (v128.load (local.get $src)))
          ${a.storeVector('(local.get $src)')}
          ${a.clipVector}
          (local.set $lo (f64x2.sub (f64x2.promote_low_f32x4 (local.get $x)) (local.get $kv)))
          (local.set $hi (f64x2.sub ${promoteHigh('(local.get $x)')} (local.get $kv)))
          (local.set $s0 (f64x2.add (local.get $s0) (local.get $lo)))
          (local.set $s1 (f64x2.add (local.get $s1) (local.get $hi)))
          (local.set $q0 (f64x2.add (local.get $q0) (f64x2.mul (local.get $lo) (local.get $lo))))
          (local.set $q1 (f64x2.add (local.get $q1) (f64x2.mul (local.get $hi) (local.get $hi))))
          (local.set $src (i32.add (local.get $src) (i32.const 16)))
          (local.set $j (i32.add (local.get $j) (i32.const 4)))
          (br $vl)))
        (local.set $s (f64.add ${hsum('(local.get $s0)')} ${hsum('(local.get $s1)')}))
        (local.set $q (f64.add ${hsum('(local.get $q0)')} ${hsum('(local.get $q1)')}))
        (block $td (loop $tl
          (br_if $td (i32.ge_s (local.get $j) (local.get $spatial)))
          ${a.loadValue('(local.get $src)')}
          (local.set $s (f64.add (local.get $s) (local.get $d)))
          (local.set $q (f64.add (local.get $q) (f64.mul (local.get $d) (local.get $d))))
          (local.set $src (i32.add (local.get $src) (i32.const 4)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $tl)))
        (local.set $p (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 3))))
        (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) (local.get $s)))
        (local.set $p (i32.add (local.get $sq) (i32.shl (local.get $c) (i32.const 3))))
        (f64.store (local.get $p) (f64.add (f64.load (local.get $p)) (local.get $q)))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $cl)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rl))))`;
};

const channelSums = (act: boolean, clip: boolean) => {
  const a = variant(act, clip);
  const extra = `${clip ? '(local.get $bounds)' : ''} ${act ? '(local.get $slope)' : ''}`;
  return `
  (func $channel_sums${a.name} (export "channel_sums${a.name}") (param $src i32) (param $rows i32)
      (param $width i32) (param $channels i32) (param $acc i32) (param $shift i32) ${a.param}
    (if (i32.eq (local.get $channels) (local.get $width))
      (then (call $feature_sums${a.name} (local.get $src) (local.get $rows) (local.get $width)
        (local.get $acc) (local.get $shift) ${extra}))
      (else (call $run_sums${a.name} (local.get $src) (local.get $rows) (local.get $channels)
        (i32.div_u (local.get $width) (local.get $channels)) (local.get $acc) (local.get $shift)
        ${extra}))))`;
};

export function statisticsWat(): string {
  return [false, true]
    .flatMap((clip) => [false, true].map((act) => [act, clip] as const))
    .flatMap(([act, clip]) => [
      perFeature(act, clip),
      perChannel(act, clip),
      channelSums(act, clip),
    ])
    .join('\n');
}
