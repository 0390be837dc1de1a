import type { Flatten } from '../../nn/index.js';
import type { CompileRule } from './compile-context.js';

/**
 * Flatten changes the shape, not the row-major values: no step, a view of the current tensor (a
 * BatchNorm1d after it reads the tensor per feature). What is pending stays valid (it is per
 * element) and a BatchNorm after it may still fold into the kernel before it.
 */
export const flattenRule: CompileRule = (module, path, ctx) => {
  const m = module as Flatten;
  ctx.view(m.outputShape([1, ...ctx.shape]).slice(1));
  ctx.fate(path, m, 'reshape');
  ctx.foldTarget = ctx.previousFoldTarget;
};
