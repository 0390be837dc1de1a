import {
  BatchNorm,
  copySliced,
  type FeatureTransform,
  finish,
  type Module,
  numelOf,
  type Sequential,
  type Sliced,
} from '../nn/index.js';
import type { BatchNormInputDraft } from './compile-rules/compile-context.js';
import {
  CompileContext,
  compileRules,
  type Draft,
  type FoldStatistics,
} from './compile-rules/index.js';
import { type BatchNormInput, type CompiledPlan, type PlanStep, stepOutputWidth } from './plan.js';

export { batchNormAffine } from './compile-rules/index.js';

export interface CompileOptions {
  /**
   * Compile only the layers before this one (a path: `"5"`, `"3.body.1"`): a prefix plan whose
   * output is that layer's input (what is pending is flushed as a step). Recalibration reads a
   * BatchNorm's input this way, exactly, with the earlier BatchNorms folded.
   */
  until?: string | undefined;
  /** Per BatchNorm path, the mean and variance to fold instead of its running statistics. */
  statistics?: ReadonlyMap<string, FoldStatistics> | undefined;
  /**
   * false: every BatchNorm runs as its own affine step after the kernel it follows (per channel,
   * x·s + t with s and t rounded to float32 once), its fate `standalone_affine`, instead of being
   * folded into a neighbour's weights. Folding rounds diag(s)·W to float32 element by element,
   * a fixed error per output channel that later layers' statistics average over every row
   * rather than out; the affine step's rounding is the per-value kind PyTorch's own BatchNorm
   * has. Recalibration's prefix plans use it (default true: the served plan folds).
   */
  foldBatchNorms?: boolean | undefined;
}

function* compileModule(path: string, module: Module, ctx: CompileContext): Sliced<void> {
  if (ctx.stopped) return;
  if (path === ctx.stopAt) {
    ctx.stopped = { path, module };
    return;
  }
  const rule = compileRules[module.kind];
  if (!rule) throw new Error(`cannot compile layer ${path} (${module.kind}) for inference`);
  ctx.previousFoldTarget = ctx.foldTarget;
  ctx.foldTarget = undefined;
  const work = rule(module, path, ctx);
  if (work) yield* work;
}

/**
 * A draft as its plan step: a kernel's float64 weights rounded once to float32, in slices. Its
 * bias's zeros become +0 (`+ 0` after the rounding, which may itself give −0): the kernels start
 * each sum at the bias, and PyTorch's Linear (addmm) and batched Conv2d (oneDNN) start it at +0
 * and add the bias last, so Σ of −0 products plus a −0 bias is +0 there, never −0. From +0 a sum
 * is −0 for no operands (docs/signed-zeros.md); the same values otherwise.
 */
function* finalize(d: Draft): Sliced<PlanStep> {
  if (d.op !== 'dense' && d.op !== 'conv2d') return d;
  const weight = new Float32Array(d.weight.length);
  yield* copySliced(weight, d.weight);
  return { ...d, weight, bias: Float32Array.from(d.bias, (b) => Math.fround(b) + 0) };
}

/**
 * Compiles a network for eval, module by module through the rule of each module kind
 * (./compile-rules/): every BatchNorm folds into the adjacent Linear or Conv2d — into the
 * preceding one's rows (W' = diag(s)·W, b' = s·b + t; for Conv2d PyTorch's fuse_conv_bn_eval)
 * when nothing non-linear lies between, else into the following one's columns — and the input
 * transform into the first one the same way; Dropout/AlphaDropout/Identity are dropped
 * (identities in eval), Flatten is free, each activation runs in the kernel before it. What cannot
 * fold runs as an affine step. Folding is done in float64 and rounded once to float32.
 *
 * `inputShape` is the shape of one sample: config.json's `input_shape`, which every model states.
 */
export function compileNetwork(
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  inputShape: readonly number[],
  options: CompileOptions = {},
): CompiledPlan {
  return finish(compilingNetwork(network, inputTransform, inputShape, options));
}

/**
 * compileNetwork in slices of at most SLICE_VALUES values copied, folded or rounded (nn/slices.ts):
 * run with finishYielding, a large network compiles without holding the event loop.
 */
export function* compilingNetwork(
  network: Sequential,
  inputTransform: FeatureTransform | undefined,
  shape: readonly number[],
  options: CompileOptions = {},
): Sliced<CompiledPlan> {
  const ctx = new CompileContext(
    shape,
    inputTransform,
    compileModule,
    options.statistics,
    options.until,
    options.foldBatchNorms ?? true,
  );
  for (const [i, m] of network.modules.entries()) yield* compileModule(String(i), m, ctx);
  ctx.flush();
  if (options.until !== undefined) {
    const stop = ctx.stopped;
    if (!stop) throw new Error(`compileNetwork: the network has no layer ${options.until}`);
    const channels = stop.module instanceof BatchNorm ? stop.module.numFeatures : ctx.width;
    ctx.batchNormInputs.push({
      path: stop.path,
      channels,
      step: ctx.drafts.length - 1,
      point: 'output',
    });
  }
  const steps: PlanStep[] = [];
  for (const draft of ctx.drafts) steps.push(yield* finalize(draft));
  const inputWidth = numelOf(shape);
  return {
    inputShape: [...shape],
    outputShape: [...ctx.shape],
    inputWidth,
    outputWidth: ctx.width,
    // A fold, not Math.max(...steps): one argument per step overflowed the stack at 200,000 steps.
    maxWidth: steps.reduce(
      (widest, step) => Math.max(widest, stepOutputWidth(step)),
      Math.max(inputWidth, ctx.maxWidth),
    ),
    skipSlots: ctx.maxDepth,
    steps,
    layers: ctx.fates,
    inputTransformFolded: ctx.inputTransformFolded,
    batchNormInputs: ctx.batchNormInputs.map(settleInput),
    // Only the views a BatchNorm reads a tensor in: the others would size the wasm engine's tap
    // accumulators (8 × its channels, memory-layout.ts) for reads no probe makes — a
    // [32, 32, 32] conv output flattened into a Linear took its 7.4 MB layout to 20 MB.
    views: ctx.views.filter((v) => ctx.batchNormInputs.some((b) => b.step + 1 === v.tensor)),
  };
}

/** A recorded BatchNorm input as the plan states it: x = y·scale + shift from the tapped y. */
function settleInput(d: BatchNormInputDraft): BatchNormInput {
  const tap = { step: d.step, point: d.point, channels: d.channels };
  if (d.reason) return { ...noTap(d), reason: d.reason };
  if (d.forward) {
    const { s, t } = d.forward;
    if (!s.every((v) => v !== 0 && Number.isFinite(v))) {
      return {
        ...noTap(d),
        reason: `folded into step ${d.step} with a zero scale (γ = 0): its input cannot be recovered from the step's output`,
      };
    }
    return {
      path: d.path,
      channels: d.channels,
      tap,
      scale: s.map((v) => 1 / v),
      shift: t.map((v, c) => -v / s[c]!),
    };
  }
  return {
    path: d.path,
    channels: d.channels,
    tap,
    scale: d.map?.scale,
    shift: d.map?.shift,
  };
}

const noTap = (d: BatchNormInputDraft): BatchNormInput => ({
  path: d.path,
  channels: d.channels,
  tap: undefined,
  scale: undefined,
  shift: undefined,
});
