import {
  type AdaptiveAvgPool2d,
  type AvgPool2d,
  adaptivePoolWindows,
  geometryFor,
  type MaxPool2d,
  type PoolWindows,
  poolWindows,
} from '../../nn/index.js';
import type { PoolSource } from '../plan.js';
import type { CompileContext, CompileRule } from './compile-context.js';

function emitPool(
  ctx: CompileContext,
  path: string,
  module: MaxPool2d | AvgPool2d | AdaptiveAvgPool2d,
  op: 'maxpool2d' | 'avgpool2d',
  windows: PoolWindows,
  source: PoolSource,
): void {
  ctx.flush();
  const channels = ctx.shape[0]!;
  ctx.emit({ op, channels, windows, source, activation: { kind: 'none' }, layers: [path] });
  ctx.fate(path, module, 'kernel');
  ctx.reshape([channels, windows.outH, windows.outW]);
}

const sliding = (m: MaxPool2d | AvgPool2d, countIncludePad: boolean): PoolSource => ({
  kind: 'sliding',
  kernel: m.kernelSize,
  stride: m.stride,
  padding: m.padding,
  countIncludePad,
});

/** MaxPool2d → a max step over the same window table as the layer (padding never wins). */
export const maxPool2dRule: CompileRule = (module, path, ctx) => {
  const m = module as MaxPool2d;
  const g = geometryFor(m.kind, [1, ...ctx.shape], m.kernelSize, m.stride, m.padding);
  emitPool(ctx, path, m, 'maxpool2d', poolWindows(g, false), sliding(m, false));
};

/** AvgPool2d → a mean step (its divisors per window from count_include_pad). */
export const avgPool2dRule: CompileRule = (module, path, ctx) => {
  const m = module as AvgPool2d;
  const g = geometryFor(m.kind, [1, ...ctx.shape], m.kernelSize, m.stride, m.padding);
  emitPool(
    ctx,
    path,
    m,
    'avgpool2d',
    poolWindows(g, m.countIncludePad),
    sliding(m, m.countIncludePad),
  );
};

/** AdaptiveAvgPool2d → the same mean step with adaptive windows. */
export const adaptiveAvgPool2dRule: CompileRule = (module, path, ctx) => {
  const m = module as AdaptiveAvgPool2d;
  const [, h, w] = ctx.shape as [number, number, number];
  emitPool(ctx, path, m, 'avgpool2d', adaptivePoolWindows(h, w, m.outputSize[0], m.outputSize[1]), {
    kind: 'adaptive',
    outputSize: m.outputSize,
  });
};
