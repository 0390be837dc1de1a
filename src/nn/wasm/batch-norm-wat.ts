import {
  demotePair,
  type LaneText,
  laneLocals,
  laneText,
  promoteHigh,
  splatScalars,
} from './f64-lanes-wat.js';
import { locals } from './wat-text.js';

/**
 * BatchNorm's per-channel loops (nn/batch-norm.ts) as WebAssembly over the [N, C, S] layout of its
 * input (S = 1 for BatchNorm1d on [N, C], H·W for BatchNorm2d): the channel sums of the batch
 * statistics and of the backward pass, the normalization and the input gradient. float64 as the
 * JavaScript, the same expressions in the same order (f64-lanes-wat.ts), so the results are the
 * same bits:
 *
 * - sums keep each channel's order — batch row by batch row, and along S within a row — so they
 *   are vectorized across channels when S = 1 (four channels per step, as two f64x2) and run one
 *   value at a time per channel when S > 1;
 * - element-wise maps have no order to keep: four channels per step when S = 1, four positions of
 *   one channel's plane per step when S > 1.
 *
 * Channel values (mean, 1/σ, …) are float64 arrays; elements are float32.
 */

interface ChannelKernel {
  name: string;
  /** float32 arrays read per element ($p_<name>; lane variable <name>). */
  inputs: readonly string[];
  /** float32 arrays written per element from the lane variable of the same name. */
  outputs?: readonly string[];
  /** float64 arrays read per channel. */
  channels?: readonly string[];
  /** float64 arrays per channel the body adds to, in order (reductions). */
  sums?: readonly string[];
  scalars?: readonly string[];
  temps?: readonly string[];
  body(t: LaneText): string;
}

function channelKernel(spec: ChannelKernel): string {
  const outputs = spec.outputs ?? [];
  const channels = spec.channels ?? [];
  const sums = spec.sums ?? [];
  const scalars = spec.scalars ?? [];
  const elements = [...new Set([...spec.inputs, ...outputs])];
  const vars = [...elements, ...channels, ...sums, ...(spec.temps ?? [])];
  const v = laneText('f64x2');
  const s = laneText('f64');
  /** Address of element array `a` at element index $e, of channel array `a` at channel $ch. */
  const el = (a: string) => `(i32.add (local.get $p_${a}) (i32.shl (local.get $e) (i32.const 2)))`;
  const ch = (a: string) => `(i32.add (local.get $p_${a}) (i32.shl (local.get $ch) (i32.const 3)))`;
  const loadElementsLo = spec.inputs
    .map(
      (a) =>
        `(local.set $ld_${a} (v128.load ${el(a)})) ${v.set(a, `(f64x2.promote_low_f32x4 (local.get $ld_${a}))`)}`,
    )
    .join(' ');
  const loadElementsHi = spec.inputs
    .map((a) => v.set(a, promoteHigh(`(local.get $ld_${a})`)))
    .join(' ');
  const storeElements = outputs
    .map((a) => `(v128.store ${el(a)} ${demotePair(`(local.get $lo_${a})`, v.get(a))})`)
    .join(' ');
  const scalarElements = spec.inputs
    .map((a) => s.set(a, `(f64.promote_f32 (f32.load ${el(a)}))`))
    .join(' ');
  const scalarStores = outputs
    .map((a) => `(f32.store ${el(a)} (f32.demote_f64 ${s.get(a)}))`)
    .join(' ');
  const scalarChannels = [...channels, ...sums]
    .map((a) => s.set(a, `(f64.load ${ch(a)})`))
    .join(' ');
  const scalarSumStores = sums.map((a) => `(f64.store ${ch(a)} ${s.get(a)})`).join(' ');

  // S = 1: four channels per step; the channel arrays are loaded as vectors, sums stored back.
  const channelsVector = `
      (block $cd (loop $cl
        (br_if $cd (i32.gt_u (i32.add (local.get $ch) (i32.const 4)) (local.get $c)))
        ${loadElementsLo}
        ${[...channels, ...sums].map((a) => v.set(a, `(v128.load ${ch(a)})`)).join(' ')}
        ${spec.body(v)}
        ${outputs.map((a) => `(local.set $lo_${a} ${v.get(a)})`).join(' ')}
        ${sums.map((a) => `(v128.store ${ch(a)} ${v.get(a)})`).join(' ')}
        ${loadElementsHi}
        ${[...channels, ...sums].map((a) => v.set(a, `(v128.load offset=16 ${ch(a)})`)).join(' ')}
        ${spec.body(v)}
        ${sums.map((a) => `(v128.store offset=16 ${ch(a)} ${v.get(a)})`).join(' ')}
        ${storeElements}
        (local.set $e (i32.add (local.get $e) (i32.const 4)))
        (local.set $ch (i32.add (local.get $ch) (i32.const 4)))
        (br $cl)))
      (block $td (loop $tl
        (br_if $td (i32.ge_u (local.get $ch) (local.get $c)))
        ${scalarElements} ${scalarChannels}
        ${spec.body(s)}
        ${scalarStores} ${scalarSumStores}
        (local.set $e (i32.add (local.get $e) (i32.const 1)))
        (local.set $ch (i32.add (local.get $ch) (i32.const 1)))
        (br $tl)))`;

  // S > 1, maps: the channel's values splatted, four positions of its plane per step.
  const planeVector = `
        ${channels.map((a) => `${s.set(a, `(f64.load ${ch(a)})`)} ${v.set(a, `(f64x2.splat ${s.get(a)})`)}`).join(' ')}
        (local.set $end (i32.add (local.get $e) (local.get $s)))
        (block $vd (loop $vl
          (br_if $vd (i32.gt_u (i32.add (local.get $e) (i32.const 4)) (local.get $end)))
          ${loadElementsLo}
          ${spec.body(v)}
          ${outputs.map((a) => `(local.set $lo_${a} ${v.get(a)})`).join(' ')}
          ${loadElementsHi}
          ${spec.body(v)}
          ${storeElements}
          (local.set $e (i32.add (local.get $e) (i32.const 4)))
          (br $vl)))
        (block $wd (loop $wl
          (br_if $wd (i32.ge_u (local.get $e) (local.get $end)))
          ${scalarElements}
          ${spec.body(s)}
          ${scalarStores}
          (local.set $e (i32.add (local.get $e) (i32.const 1)))
          (br $wl)))`;

  // S > 1, sums: one value at a time along the plane, each channel's sums kept in locals.
  const planeScalar = `
        ${scalarChannels}
        (local.set $end (i32.add (local.get $e) (local.get $s)))
        (block $wd (loop $wl
          (br_if $wd (i32.ge_u (local.get $e) (local.get $end)))
          ${scalarElements}
          ${spec.body(s)}
          ${scalarStores}
          (local.set $e (i32.add (local.get $e) (i32.const 1)))
          (br $wl)))
        ${scalarSumStores}`;

  return `
  (func $${spec.name} (export "${spec.name}")
      ${elements.map((a) => `(param $p_${a} i32)`).join(' ')}
      ${[...channels, ...sums].map((a) => `(param $p_${a} i32)`).join(' ')}
      (param $n i32) (param $c i32) (param $s i32)
      ${scalars.map((k) => `(param $${k} f64)`).join(' ')}
    ${locals('i32', 'b', 'ch', 'e', 'end')}
    ${laneLocals(vars, scalars)}
    ${locals('v128', ...spec.inputs.map((a) => `ld_${a}`), ...outputs.map((a) => `lo_${a}`))}
    ${splatScalars(scalars)}
    (if (i32.eq (local.get $s) (i32.const 1))
      (then
        (block $bd (loop $bl
          (br_if $bd (i32.ge_u (local.get $b) (local.get $n)))
          (local.set $ch (i32.const 0))
          ${channelsVector}
          (local.set $b (i32.add (local.get $b) (i32.const 1)))
          (br $bl))))
      (else
        (block $bd (loop $bl
          (br_if $bd (i32.ge_u (local.get $b) (local.get $n)))
          (local.set $ch (i32.const 0))
          (block $cd (loop $cl
            (br_if $cd (i32.ge_u (local.get $ch) (local.get $c)))
            ${sums.length > 0 ? planeScalar : planeVector}
            (local.set $ch (i32.add (local.get $ch) (i32.const 1)))
            (br $cl)))
          (local.set $b (i32.add (local.get $b) (i32.const 1)))
          (br $bl))))))`;
}

/** bn_sum(x, sum, N, C, S): sum[c] += Σ x over the channel (the batch mean's numerator). */
const sumKernel = channelKernel({
  name: 'bn_sum',
  inputs: ['x'],
  sums: ['sum'],
  body: (t) => t.set('sum', t.op('add', t.get('sum'), t.get('x'))),
});

/** bn_sum_sq(x, mean, sum, N, C, S): sum[c] += Σ (x − mean)² (the biased variance's numerator). */
const sumSquaresKernel = channelKernel({
  name: 'bn_sum_sq',
  inputs: ['x'],
  channels: ['mean'],
  sums: ['sum'],
  temps: ['d'],
  body: (t) =>
    `${t.set('d', t.op('sub', t.get('x'), t.get('mean')))}
     ${t.set('sum', t.op('add', t.get('sum'), t.op('mul', t.get('d'), t.get('d'))))}`,
});

/**
 * bn_normalize(x, out, mean, invstd, gamma, beta, N, C, S): out = x̂·γ + β with
 * x̂ = (x − mean)·invstd (γ = 1, β = 0 without affine parameters, as the JavaScript).
 */
const normalizeKernel = channelKernel({
  name: 'bn_normalize',
  inputs: ['x'],
  outputs: ['out'],
  channels: ['mean', 'invstd', 'gamma', 'beta'],
  body: (t) =>
    t.set(
      'out',
      t.op(
        'add',
        t.op(
          'mul',
          t.op('mul', t.op('sub', t.get('x'), t.get('mean')), t.get('invstd')),
          t.get('gamma'),
        ),
        t.get('beta'),
      ),
    ),
});

/**
 * bn_backward_sums(dy, x, mean, invstd, sum_dy, sum_dy_xhat, N, C, S): the channel sums of dy and
 * of dy·x̂, with x̂ recomputed exactly as the forward pass computed it.
 */
const backwardSumsKernel = channelKernel({
  name: 'bn_backward_sums',
  inputs: ['dy', 'x'],
  channels: ['mean', 'invstd'],
  sums: ['sum_dy', 'sum_dy_xhat'],
  body: (t) =>
    `${t.set('sum_dy', t.op('add', t.get('sum_dy'), t.get('dy')))}
     ${t.set(
       'sum_dy_xhat',
       t.op(
         'add',
         t.get('sum_dy_xhat'),
         t.op(
           'mul',
           t.get('dy'),
           t.op('mul', t.op('sub', t.get('x'), t.get('mean')), t.get('invstd')),
         ),
       ),
     )}`,
});

/**
 * bn_input_grad(dy, x, dx, mean, invstd, scale, sum_dy, sum_dy_xhat, N, C, S, count):
 * dx = (scale/count)·(count·dy − Σdy − x̂·Σ(dy·x̂)) with scale = γ·invstd, the gradient through the
 * batch statistics; the caller passes scale/count per channel.
 */
const inputGradKernel = channelKernel({
  name: 'bn_input_grad',
  inputs: ['dy', 'x'],
  outputs: ['dx'],
  channels: ['mean', 'invstd', 'scale', 'sum_dy', 'sum_dy_xhat'],
  scalars: ['count'],
  body: (t) =>
    t.set(
      'dx',
      t.op(
        'mul',
        t.get('scale'),
        t.op(
          'sub',
          t.op('sub', t.op('mul', t.k('count'), t.get('dy')), t.get('sum_dy')),
          t.op(
            'mul',
            t.op('mul', t.op('sub', t.get('x'), t.get('mean')), t.get('invstd')),
            t.get('sum_dy_xhat'),
          ),
        ),
      ),
    ),
});

/** bn_scale_grad(dy, dx, scale, N, C, S): dx = scale·dy (eval mode: fixed statistics). */
const scaleGradKernel = channelKernel({
  name: 'bn_scale_grad',
  inputs: ['dy'],
  outputs: ['dx'],
  channels: ['scale'],
  body: (t) => t.set('dx', t.op('mul', t.get('scale'), t.get('dy'))),
});

export function batchNormWat(): string {
  return [
    sumKernel,
    sumSquaresKernel,
    normalizeKernel,
    backwardSumsKernel,
    inputGradKernel,
    scaleGradKernel,
  ].join('\n');
}
