import {
  type AdaptiveAvgPool2d,
  type AvgPool2d,
  adaptivePoolWindows,
  geometryFor,
  type MaxPool2d,
  type PoolWindows,
  poolWindows,
} from '../../nn/index.js';
import type { CompileContext, CompileRule } from './compile-context.js';

function emitPool(
  ctx: CompileContext,
  path: string,
  module: MaxPool2d | AvgPool2d | AdaptiveAvgPool2d,
  op: 'maxpool2d' | 'avgpool2d',
  windows: PoolWindows,
): void {
  ctx.flush();
  const channels = ctx.shape[0]!;
  ctx.emit({ op, channels, windows, activation: { kind: 'none' }, layers: [path] });
  ctx.fate(path, module, 'kernel');
  ctx.reshape([channels, windows.outH, windows.outW]);
}

/** MaxPool2d → a max step over the same window table as the layer (padding never wins). */
export const maxPool2dRule: CompileRule = (module, path, ctx) => {
  const m = module as MaxPool2d;
  const g = geometryFor(m.kind, [1, ...ctx.shape], m.kernelSize, m.stride, m.padding);
  emitPool(ctx, path, m, 'maxpool2d', poolWindows(g, false));
};

/** AvgPool2d → a mean step (its divisors per window from count_include_pad). */
export const avgPool2dRule: CompileRule = (module, path, ctx) => {
  const m = module as AvgPool2d;
  const g = geometryFor(m.kind, [1, ...ctx.shape], m.kernelSize, m.stride, m.padding);
  emitPool(ctx, path, m, 'avgpool2d', poolWindows(g, m.countIncludePad));
};

/** AdaptiveAvgPool2d → the same mean step with adaptive windows. */
export const adaptiveAvgPool2dRule: CompileRule = (module, path, ctx) => {
  const m = module as AdaptiveAvgPool2d;
  const [, h, w] = ctx.shape as [number, number, number];
  emitPool(ctx, path, m, 'avgpool2d', adaptivePoolWindows(h, w, m.outputSize[0], m.outputSize[1]));
};
