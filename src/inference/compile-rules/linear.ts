import { copySliced, type Linear, SLICE_VALUES } from '../../nn/index.js';
import type { CompileRule, DenseDraft } from './compile-context.js';

/**
 * Linear → a dense step. An affine pending before it folds into its columns:
 * W(x·s + t) + b = (W·diag(s))x + (b + W·t).
 */
export const linearRule: CompileRule = function* (module, path, ctx) {
  const m = module as Linear;
  const inF = m.inFeatures;
  const outF = m.outFeatures;
  const weight = new Float64Array(inF * outF);
  yield* copySliced(weight, m.weight.value.data);
  const bias = m.bias ? Float64Array.from(m.bias.value.data) : new Float64Array(outF);
  let layers = [path];
  const pending = ctx.pendingToFold();
  if (pending) {
    let sliced = 0;
    for (let o = 0; o < outF; o++) {
      let extra = 0;
      for (let i = 0; i < inF; i++) {
        extra += weight[o * inF + i]! * pending.shift[i]!;
        weight[o * inF + i] = weight[o * inF + i]! * pending.scale[i]!;
      }
      bias[o] = bias[o]! + extra;
      sliced += inF;
      if (sliced >= SLICE_VALUES) {
        sliced = 0;
        yield;
      }
    }
    layers = [...ctx.consumePending('folded_into_next_linear'), ...layers]; // not unshift(...): one argument per folded layer
  }
  const draft: DenseDraft = {
    op: 'dense',
    inFeatures: inF,
    outFeatures: outF,
    weight,
    bias,
    activation: { kind: 'none' },
    layers,
  };
  ctx.emit(draft);
  ctx.fate(path, m, 'kernel');
  ctx.reshape([outF]);
  ctx.foldTarget = draft;
};
