import { Residual } from '../../nn/index.js';
import type { CompileRule } from './compile-context.js';

/**
 * A residual block → save_skip (the block's input to a skip slot), the body's steps (compiled like
 * any layers: its BatchNorms fold into its convolutions), then add_skip with the block's ReLU,
 * y = relu(body(x) + x). Nested blocks use the next slot.
 */
export const residualRule: CompileRule = function* (module, path, ctx) {
  const m = module as Residual;
  ctx.flush();
  const slot = ctx.depth;
  ctx.depth += 1;
  ctx.maxDepth = Math.max(ctx.maxDepth, ctx.depth);
  const features = ctx.width;
  ctx.emit({ op: 'save_skip', slot, features, activation: { kind: 'none' }, layers: [path] });
  ctx.fate(path, m, 'kernel');
  for (const [j, child] of m.body.modules.entries())
    yield* ctx.compileModule(`${path}.${Residual.childName(j)}`, child, ctx);
  // A prefix plan that stops inside the body ends there (the skip is never added).
  if (ctx.stopped) return;
  ctx.flush();
  ctx.emit({ op: 'add_skip', slot, features, activation: { kind: 'relu' }, layers: [path] });
  ctx.depth -= 1;
  ctx.foldTarget = undefined;
};
