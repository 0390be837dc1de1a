import { type LayerNorm, numelOf } from '../../nn/index.js';
import type { CompileRule } from './compile-context.js';

/** LayerNorm stays a kernel (per-sample statistics cannot be folded), over its trailing dims. */
export const layerNormRule: CompileRule = (module, path, ctx) => {
  const m = module as LayerNorm;
  ctx.flush();
  const groupSize = numelOf(m.normalizedShape);
  ctx.emit({
    op: 'layernorm',
    groups: ctx.width / groupSize,
    groupSize,
    eps: m.eps,
    weight: m.weight ? m.weight.value.data.slice() : undefined,
    bias: m.bias ? m.bias.value.data.slice() : undefined,
    activation: { kind: 'none' },
    layers: [path],
  });
  ctx.fate(path, m, 'kernel');
};
