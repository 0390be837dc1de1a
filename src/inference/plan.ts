import type { Pair, PoolWindows, WindowGeometry } from '../nn/index.js';

/** An activation applied inside a kernel's output loop. */
export type Activation =
  | { kind: 'none' }
  | { kind: 'relu' }
  | { kind: 'leaky_relu'; negativeSlope: number }
  | { kind: 'gelu' }
  | { kind: 'gelu_tanh' }
  | { kind: 'tanh' }
  | { kind: 'sigmoid' }
  | { kind: 'selu' };

/** The negative slope an activation's kernel applies below 0 (LeakyReLU's; 0 for the others). */
export const slopeOf = (a: Activation): number => (a.kind === 'leaky_relu' ? a.negativeSlope : 0);

/**
 * Every step reads the tensor the previous step wrote, one sample per row: [rows, features]
 * row-major, where a [C, H, W] sample is stored as PyTorch stores it (NCHW). `layers` are the
 * paths of the network layers a step computes (`"4"`, or `"1.body.3"` inside a block).
 */
interface StepBase {
  activation: Activation;
  layers: string[];
}

/** y = act(x Wᵀ + b): a Linear with everything folded into it. */
export interface DenseStep extends StepBase {
  op: 'dense';
  inFeatures: number;
  outFeatures: number;
  /** [outFeatures, inFeatures], row-major. */
  weight: Float32Array;
  bias: Float32Array;
}

/**
 * A Conv2d (BatchNorm folded in) as a general matrix product: the windows of each sample become
 * rows of cols [H_out·W_out, C·kh·kw] (im2col), then out = act(cols · Wᵀ + b) — the same GEMM as
 * DenseStep, over N·H_out·W_out rows — written back as [out_channels, H_out, W_out].
 */
export interface Conv2dStep extends StepBase {
  op: 'conv2d';
  geometry: WindowGeometry;
  outChannels: number;
  /** [outChannels, C·kh·kw], row-major (the [out, C, kh, kw] weight, read row-major). */
  weight: Float32Array;
  bias: Float32Array;
}

/**
 * y = act(x·scale[c] + shift[c]) per channel c of `spatial` consecutive values: a BatchNorm (or
 * the input transform) with nothing to fold into. Per feature: spatial = 1. scale and shift stay
 * float64 and every engine computes x·scale + shift in float64, rounded once to float32 (as nn's
 * BatchNorm and input transform do): float32 parameters would add the same error to every row of
 * a channel, which statistics gathered over many rows (recalibration) average over, not out.
 */
export interface AffineStep extends StepBase {
  op: 'affine';
  channels: number;
  spatial: number;
  scale: Float64Array;
  shift: Float64Array;
  /**
   * Per channel (or element), the value the step's input is centred on, where known: the input
   * transform's mean, a BatchNorm's running mean. The executors compute x·s + t in float64 and
   * need none; the ONNX export, in float32, centres on it first (foldCentre).
   */
  centre?: Float64Array;
}

/** LayerNorm: each row is `groups` groups of `groupSize` values, each normalized on its own. */
export interface LayerNormStep extends StepBase {
  op: 'layernorm';
  groups: number;
  groupSize: number;
  eps: number;
  /** [groupSize] each, or undefined without elementwise_affine. */
  weight: Float32Array | undefined;
  bias: Float32Array | undefined;
}

/** An activation with no kernel before it to run inside. */
export interface ActivationStep extends StepBase {
  op: 'activation';
  features: number;
}

/**
 * The layer a pool step's windows come from (what an exporter writes; the executors read only the
 * windows): a sliding window (MaxPool2d, AvgPool2d; dilation 1, ceil_mode=False), or adaptive.
 */
export type PoolSource =
  | { kind: 'sliding'; kernel: Pair; stride: Pair; padding: Pair; countIncludePad: boolean }
  | { kind: 'adaptive'; outputSize: Pair };

/** Max or mean over windows (MaxPool2d; AvgPool2d and AdaptiveAvgPool2d), per channel. */
export interface PoolStep extends StepBase {
  op: 'maxpool2d' | 'avgpool2d';
  channels: number;
  windows: PoolWindows;
  source: PoolSource;
}

/** Keeps a copy of the current tensor in skip slot `slot` (the input of a residual block). */
export interface SaveSkipStep extends StepBase {
  op: 'save_skip';
  slot: number;
  features: number;
}

/** y = act(x + skip[slot]): the end of a residual block (act = its ReLU). */
export interface AddSkipStep extends StepBase {
  op: 'add_skip';
  slot: number;
  features: number;
}

export type PlanStep =
  | DenseStep
  | Conv2dStep
  | AffineStep
  | LayerNormStep
  | ActivationStep
  | PoolStep
  | SaveSkipStep
  | AddSkipStep;

/**
 * The kernel family a step runs in: `gemm` (the matrix product: dense), `elementwise` (per value
 * or per row: affine, LayerNorm, activation) or `cnn` (windows and skips: convolution, pooling,
 * residual save and add). An engine may ship the families apart (the wasm module's parts).
 */
export type StepFamily = 'gemm' | 'elementwise' | 'cnn';

/** What the readers of a plan ask of a step of one op, beside the executors' own kernels. */
interface StepTraits<S extends PlanStep> {
  family: StepFamily;
  /** Values per row after the step (its output tensor; save_skip passes its input on). */
  outputWidth(step: S): number;
  /**
   * The natural channels of its output (C of a [C, H, W] tensor, the width of a flat one), or
   * absent: it keeps the layout of what it reads (element-wise, LayerNorm, skips).
   */
  outputChannels?(step: S): number;
  /**
   * Floating-point operations per row, as the engines count work: 2·in·out for a dense step (a
   * multiply and an add per weight), 2·(weights)·positions for a convolution, 2 per value of an
   * affine step and of a residual add, 8 per value of a LayerNorm, a read per input value of a
   * pool (plus its fused activation), one per value of an activation.
   */
  flopsPerRow(step: S): number;
}

const poolTraits: StepTraits<PoolStep> = {
  family: 'cnn',
  outputWidth: (step) => step.channels * step.windows.outH * step.windows.outW,
  outputChannels: (step) => step.channels,
  flopsPerRow: (step) => {
    const win = step.windows;
    const activation = step.activation.kind !== 'none' ? step.channels * win.outH * win.outW : 0;
    return step.channels * win.inH * win.inW + activation;
  },
};

/** Every step op's traits: one row per op, which stepTraits hands out. */
const STEP_TRAITS: { readonly [Op in PlanStep['op']]: StepTraits<PlanStep & { op: Op }> } = {
  dense: {
    family: 'gemm',
    outputWidth: (step) => step.outFeatures,
    outputChannels: (step) => step.outFeatures,
    flopsPerRow: (step) => 2 * step.inFeatures * step.outFeatures,
  },
  conv2d: {
    family: 'cnn',
    outputWidth: (step) => step.outChannels * step.geometry.outH * step.geometry.outW,
    outputChannels: (step) => step.outChannels,
    flopsPerRow: (step) => 2 * step.weight.length * step.geometry.outH * step.geometry.outW,
  },
  affine: {
    family: 'elementwise',
    outputWidth: (step) => step.channels * step.spatial,
    outputChannels: (step) => step.channels,
    flopsPerRow: (step) => 2 * step.channels * step.spatial,
  },
  layernorm: {
    family: 'elementwise',
    outputWidth: (step) => step.groups * step.groupSize,
    flopsPerRow: (step) => 8 * step.groups * step.groupSize,
  },
  activation: {
    family: 'elementwise',
    outputWidth: (step) => step.features,
    flopsPerRow: (step) => step.features,
  },
  maxpool2d: poolTraits,
  avgpool2d: poolTraits,
  save_skip: {
    family: 'cnn',
    outputWidth: (step) => step.features,
    flopsPerRow: () => 0,
  },
  add_skip: {
    family: 'cnn',
    outputWidth: (step) => step.features,
    flopsPerRow: (step) => 2 * step.features,
  },
};

/**
 * The traits of a step's op. (The table's rows take their own op's step; a step is only ever
 * handed to its op's row, which is what the cast to the common type states.)
 */
export const stepTraits = (step: PlanStep): StepTraits<PlanStep> =>
  STEP_TRAITS[step.op] as StepTraits<PlanStep>;

/** Values per row after a step (its output tensor; save_skip passes its input on). */
export const stepOutputWidth = (step: PlanStep): number => stepTraits(step).outputWidth(step);

/** What compilation did to each network layer, for the model metadata endpoint. */
export interface LayerFate {
  /** Index of the top-level layer (of the block, for a layer inside one). */
  index: number;
  /** The layer's path: its state-dict prefix (`"5"`, `"1.body.3"`). */
  path: string;
  kind: string;
  fate:
    | 'kernel'
    | 'folded_into_previous_linear'
    | 'folded_into_next_linear'
    | 'folded_into_previous_conv'
    | 'folded_into_next_conv'
    | 'standalone_affine'
    | 'fused_activation'
    | 'reshape'
    | 'removed_in_eval';
}

/**
 * Where the input of one BatchNorm can be read in the plan (BatchNorms vanish into kernels): a
 * statistics tap, and the per-channel map x = y·scale + shift from the tapped values y to the
 * BatchNorm's input x (batch-norm-inputs.ts turns tap sums into the input's moments).
 *  - folded into the step before it: that step's pre-activation output y = x·s + t, so
 *    scale = 1/s, shift = −t/s (with later BatchNorms folded into the same step composed in);
 *  - pending (folded into the next kernel, or a standalone affine): the current tensor, through
 *    what was pending before it (the input transform, earlier BatchNorms), or as it is;
 *  - the BatchNorm a prefix plan stops at (compileNetwork's `until`): the plan's output, as it is.
 */
export interface BatchNormInput {
  /** The BatchNorm's path (state-dict prefix). */
  path: string;
  /** Its channels (features). */
  channels: number;
  /** Undefined when its input cannot be recovered here (`reason` says why). */
  tap: { step: number; point: 'output' | 'pre_activation'; channels: number } | undefined;
  /** Per channel; undefined: x = y. */
  scale: Float64Array | undefined;
  shift: Float64Array | undefined;
  reason?: string;
}

/**
 * A shape a Flatten gives a tensor between steps: the layers after it read the tensor (0 the plan's
 * input, i + 1 step i's output) as `shape`. Flatten emits no step (row-major values are unchanged),
 * so this is the one place the plan says a [C, H, W] tensor is read as [C·H·W] features (or
 * [C·H, W]) from there on.
 */
export interface TensorView {
  tensor: number;
  shape: number[];
}

/** An eval-mode execution plan: a short list of fused kernels. */
export interface CompiledPlan {
  /** The shape of one input sample ([F] or [C, H, W]); rows are stored flat, row-major. */
  inputShape: number[];
  outputShape: number[];
  /** Values per input row (the product of inputShape). */
  inputWidth: number;
  outputWidth: number;
  /** Widest tensor between steps, in values per row (sizes the preallocated buffers). */
  maxWidth: number;
  /** Skip slots the residual blocks need at once (their nesting depth). */
  skipSlots: number;
  steps: PlanStep[];
  layers: LayerFate[];
  /** Whether the input transform was folded into the first Linear or Conv2d. */
  inputTransformFolded: boolean;
  /** Every BatchNorm compiled (the one a prefix plan stops at last), in network order. */
  batchNormInputs: BatchNormInput[];
  /**
   * The shapes Flatten layers give tensors a BatchNorm reads, in network order: a tensor's
   * natural channels (statistics-probe.ts, tensorChannels) are the finest it is read in — a
   * BatchNorm1d after a Flatten of a [C, H, W] convolution's output has C·H·W features, each one
   * value of the step's output. (A view no BatchNorm reads is left out: it would only size the
   * wasm engine's tap accumulators for reads no probe makes.)
   */
  views: TensorView[];
}
