import type { BatchNorm } from '../../nn/index.js';
import {
  type CompileRule,
  type ConvDraft,
  type DenseDraft,
  uniformPerChannel,
} from './compile-context.js';

/**
 * Eval-mode BatchNorm as a per-channel affine map: y = x·s + t with s = γ/√(σ² + ε) and
 * t = β − μ·s, from the running statistics only (never batch statistics).
 */
export function batchNormAffine(bn: BatchNorm): { scale: Float64Array; shift: Float64Array } {
  const c = bn.numFeatures;
  const scale = new Float64Array(c);
  const shift = new Float64Array(c);
  const mean = bn.runningMean.data;
  const variance = bn.runningVar.data;
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
function foldIntoProducer(
  target: DenseDraft | ConvDraft,
  scale: Float64Array,
  shift: Float64Array,
): boolean {
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
  for (let o = 0; o < s.length; o++) {
    const so = s[o]!;
    for (let i = 0; i < rowLength; i++)
      target.weight[o * rowLength + i] = target.weight[o * rowLength + i]! * so;
    target.bias[o] = target.bias[o]! * so + t[o]!;
  }
  return true;
}

/**
 * BatchNorm1d/2d in eval mode: folded into the Linear or Conv2d right before it when nothing
 * non-linear lies between; otherwise pending, to fold into the next Linear/Conv2d's columns or to
 * run as an affine step. Folding is done in float64 and rounded once to float32.
 */
export const batchNormRule: CompileRule = (module, path, ctx) => {
  const bn = module as BatchNorm;
  const perChannel = batchNormAffine(bn);
  const spatial = ctx.width / bn.numFeatures;
  const expand = (v: Float64Array) =>
    Float64Array.from({ length: ctx.width }, (_, i) => v[Math.floor(i / spatial)]!);
  const scale = expand(perChannel.scale);
  const shift = expand(perChannel.shift);
  const target = ctx.previousFoldTarget;
  if (
    !ctx.pending &&
    target &&
    target.activation.kind === 'none' &&
    foldIntoProducer(target, scale, shift)
  ) {
    target.layers.push(path);
    ctx.fate(
      path,
      bn,
      target.op === 'dense' ? 'folded_into_previous_linear' : 'folded_into_previous_conv',
    );
    ctx.foldTarget = target;
    return;
  }
  ctx.addPending(scale, shift, path);
  // Provisional: settled when the pending affine is folded into a kernel or flushed as a step.
  ctx.fate(path, bn, 'folded_into_next_linear');
};
