import { type BatchNorm, SLICE_VALUES, type Sliced } from '../../nn/index.js';
import {
  type CompileContext,
  type CompileRule,
  type ConvDraft,
  type DenseDraft,
  type FoldStatistics,
  uniformPerChannel,
} from './compile-context.js';

/**
 * Eval-mode BatchNorm as a per-channel affine map: y = x·s + t with s = γ/√(σ² + ε) and
 * t = β − μ·s, from the running statistics (or the statistics given: a train-mode batch's mean
 * and biased variance, for running-mode recalibration).
 */
export function batchNormAffine(
  bn: BatchNorm,
  statistics?: FoldStatistics,
): { scale: Float64Array; shift: Float64Array } {
  const c = bn.numFeatures;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  const mean = statistics?.mean ?? bn.runningMean.data;
  const variance = statistics?.variance ?? bn.runningVar.data;
  for (let k = 0; k < c; k++) {
    const gamma = bn.weight ? bn.weight.value.data[k]! : 1;
    const beta = bn.bias ? bn.bias.value.data[k]! : 0;
    scale[k] = gamma / Math.sqrt(variance[k]! + bn.eps);
    shift[k] = beta - mean[k]! * scale[k]!;
  }
  return { scale, shift };
}

/**
 * Folds y = x·s + t (per element of the producer's output) into the rows of the step that produced
 * x: s·(Wx + b) + t = (diag(s)·W)x + (s·b + t) — for a conv step PyTorch's fuse_conv_bn_eval,
 * W'[o] = W[o]·s_o, b'[o] = b[o]·s_o + t_o, which needs one s and t per output channel.
 */
function* foldIntoProducer(
  target: DenseDraft | ConvDraft,
  scale: Float64Array,
  shift: Float64Array,
): Sliced<boolean> {
  let s = scale;
  let t = shift;
  let rowLength: number;
  if (target.op === 'conv2d') {
    const g = target.geometry;
    const perChannel = uniformPerChannel({ scale, shift }, [target.outChannels, g.outH, g.outW]);
    if (!perChannel) return false;
    s = perChannel.scale;
    t = perChannel.shift;
    rowLength = g.channels * g.kernel[0] * g.kernel[1];
  } else {
    rowLength = target.inFeatures;
  }
  let sliced = 0;
  for (let o = 0; o < s.length; o++) {
    const so = s[o]!;
    for (let i = 0; i < rowLength; i++)
      target.weight[o * rowLength + i] = target.weight[o * rowLength + i]! * so;
    target.bias[o] = target.bias[o]! * so + t[o]!;
    sliced += rowLength;
    if (sliced >= SLICE_VALUES) {
      sliced = 0;
      yield;
    }
  }
  return true;
}

/**
 * Whether the step this BatchNorm would fold into gives PyTorch's zeros, sign included. PyTorch
 * computes y·α + β' with α = γ/√(σ² + ε) and β' = β − μ·α (batch_norm_cpu_collect_linear_and_
 * constant_terms), and the Linear or Conv2d before it gives y = +0, never −0, for a zero (its sum
 * starts at +0); so its zero output is −0 exactly when β' is −0 and y·α is −0: α < 0 (y = +0),
 * or α = ±0 (then for some rows only: y·(±0) takes y's sign). The folded step's zeros are +0
 * (compile.ts, `finalize`), right for every other channel: a BatchNorm with such a channel
 * (β = −0 with μ·α = +0, e.g. μ = −0 and γ < 0) is not folded into the step before it — it stays
 * pending (an affine step, or folded into the next Linear's columns), whose x·s + t has
 * PyTorch's signs. test/inference/signed-zeros.test.ts holds both cases to PyTorch's bits.
 */
function foldKeepsZeroSigns(affine: { scale: Float64Array; shift: Float64Array }): boolean {
  return affine.shift.every((t, c) => !Object.is(t, -0) || affine.scale[c]! > 0);
}

/**
 * BatchNorm1d/2d in eval mode: folded into the Linear or Conv2d right before it when nothing
 * non-linear lies between; otherwise pending, to fold into the next Linear/Conv2d's columns or to
 * run as an affine step. Folding is done in float64 and rounded once to float32.
 */
export const batchNormRule: CompileRule = function* (module, path, ctx) {
  const bn = module as BatchNorm;
  const perChannel = batchNormAffine(bn, ctx.statistics.get(path));
  const spatial = ctx.width / bn.numFeatures;
  const expand = (v: Float64Array) =>
    Float64Array.from({ length: ctx.width }, (_, i) => v[Math.floor(i / spatial)]!);
  const scale = expand(perChannel.scale);
  const shift = expand(perChannel.shift);
  if (!ctx.foldBatchNorms) {
    // Whatever is pending (the input transform) runs first, then this BatchNorm on its own.
    ctx.flush();
    recordPending(ctx, path, bn.numFeatures);
    ctx.addPending(scale, shift, path);
    ctx.fate(path, bn, 'standalone_affine');
    ctx.flush();
    return;
  }
  const target = ctx.previousFoldTarget;
  if (
    !ctx.pending &&
    target &&
    target.activation.kind === 'none' &&
    foldKeepsZeroSigns(perChannel) &&
    (yield* foldIntoProducer(target, scale, shift))
  ) {
    target.layers.push(path);
    ctx.fate(
      path,
      bn,
      target.op === 'dense' ? 'folded_into_previous_linear' : 'folded_into_previous_conv',
    );
    ctx.foldTarget = target;
    recordFolded(ctx, path, bn.numFeatures, ctx.drafts.indexOf(target), perChannel);
    return;
  }
  recordPending(ctx, path, bn.numFeatures);
  // Its mean: where its input is centred (CompileContext.centrePending).
  const mean = ctx.statistics.get(path)?.mean ?? bn.runningMean.data;
  ctx.addPending(scale, shift, path, expand(Float64Array.from(mean)));
  // Provisional: settled when the pending affine is folded into a kernel or flushed as a step.
  ctx.fate(path, bn, 'folded_into_next_linear');
};

/**
 * A BatchNorm folded into step `step`: its input x is that step's pre-activation output through
 * y = x·s + t; BatchNorms folded into the same step earlier now see this one composed after them.
 * Their channels may be coarser than this one's (a BatchNorm2d of a convolution's C channels, then
 * a BatchNorm1d of its C·H·W flattened features): channel c of theirs composes with this one's
 * channel holding its first value, as this one is uniform over each of the step's channels (it
 * folded) and each of theirs lies within one of those.
 */
function recordFolded(
  ctx: CompileContext,
  path: string,
  channels: number,
  step: number,
  affine: { scale: Float64Array; shift: Float64Array },
): void {
  const spatial = ctx.width / channels;
  for (const r of ctx.batchNormInputs) {
    if (r.step !== step || r.point !== 'pre_activation' || !r.forward) continue;
    const theirSpatial = ctx.width / r.channels;
    for (let c = 0; c < r.channels; c++) {
      const k = Math.floor((c * theirSpatial) / spatial);
      r.forward.s[c] = r.forward.s[c]! * affine.scale[k]!;
      r.forward.t[c] = r.forward.t[c]! * affine.scale[k]! + affine.shift[k]!;
    }
  }
  ctx.batchNormInputs.push({
    path,
    channels,
    step,
    point: 'pre_activation',
    forward: { s: affine.scale.slice(), t: affine.shift.slice() },
  });
}

/**
 * A BatchNorm left pending: its input is the current tensor (the last step's output, or the
 * plan's input) through what is pending before it (per element), which must be one scale and
 * shift per channel of the BatchNorm: its `channels` runs of width/channels values (C planes of a
 * [C, H, W] tensor, the features of a flat one, a Flatten's view included).
 */
function recordPending(ctx: CompileContext, path: string, channels: number): void {
  const step = ctx.drafts.length - 1;
  const p = ctx.pending;
  const record = { path, channels, step, point: 'output' as const };
  if (!p) {
    ctx.batchNormInputs.push(record);
    return;
  }
  const map = uniformPerChannel(p, [channels]);
  ctx.batchNormInputs.push(
    map
      ? { ...record, map }
      : {
          ...record,
          reason:
            'its input is the current tensor through an affine map that differs within a channel',
        },
  );
}
