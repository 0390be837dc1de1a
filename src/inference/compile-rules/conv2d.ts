import { type Conv2d, copySliced, geometryFor, SLICE_VALUES } from '../../nn/index.js';
import { type CompileRule, type ConvDraft, uniformPerChannel } from './compile-context.js';

/**
 * Conv2d → a conv step (im2col + the dense GEMM). An affine pending before it folds into its
 * weights when it is one scale and shift per input channel, W'[o, c] = W[o, c]·s_c and
 * b' = b + Σ_{c,i,j} W[o, c, i, j]·t_c, and when the zero padding cannot tell the difference
 * (no padding, or t = 0: padding zeros are zeros of the transformed input); else it runs first.
 */
export const conv2dRule: CompileRule = function* (module, path, ctx) {
  const m = module as Conv2d;
  const geometry = geometryFor(
    m.kind,
    [1, ...ctx.shape],
    m.kernelSize,
    m.stride,
    m.padding,
    m.dilation,
  );
  const o = m.outChannels;
  const c = m.inChannels;
  const taps = m.kernelSize[0] * m.kernelSize[1];
  const k = c * taps;
  const weight = new Float64Array(m.weight.value.data.length);
  yield* copySliced(weight, m.weight.value.data);
  const bias = m.bias ? Float64Array.from(m.bias.value.data) : new Float64Array(o);
  let layers = [path];
  if (ctx.pending) {
    const unpadded = m.padding[0] === 0 && m.padding[1] === 0;
    const foldable = uniformPerChannel(ctx.pending, ctx.shape);
    // Centred only once it folds (a centred affine keeps one scale and shift per channel), and
    // only without padding: padding zeros stand for zeros of the transformed input only while
    // the shift is 0, which centring would end (review of the session's fixes, finding 1).
    const perChannel =
      foldable && unpadded
        ? uniformPerChannel(ctx.pendingToFold()!, ctx.shape)
        : foldable?.shift.every((t) => t === 0)
          ? foldable
          : undefined;
    if (perChannel) {
      let sliced = 0;
      for (let out = 0; out < o; out++) {
        let extra = 0;
        for (let ch = 0; ch < c; ch++) {
          const base = out * k + ch * taps;
          for (let j = 0; j < taps; j++) {
            extra += weight[base + j]! * perChannel.shift[ch]!;
            weight[base + j] = weight[base + j]! * perChannel.scale[ch]!;
          }
        }
        bias[out] = bias[out]! + extra;
        sliced += k;
        if (sliced >= SLICE_VALUES) {
          sliced = 0;
          yield;
        }
      }
      layers = [...ctx.consumePending('folded_into_next_conv'), ...layers]; // not unshift(...): one argument per folded layer
    } else {
      ctx.flush();
    }
  }
  const draft: ConvDraft = {
    op: 'conv2d',
    geometry,
    outChannels: o,
    weight,
    bias,
    activation: { kind: 'none' },
    layers,
  };
  ctx.emit(draft);
  ctx.fate(path, m, 'kernel');
  ctx.reshape([o, geometry.outH, geometry.outW]);
  ctx.foldTarget = draft;
};
