export * from './activation-functions.js';
export {
  GELU,
  type GeluApproximate,
  Identity,
  LeakyReLU,
  ReLU,
  SELU,
  Sigmoid,
  Tanh,
} from './activations.js';
export { ADAM_DEFAULTS, Adam, type AdamOptions, AdamW } from './adam.js';
export { allFinite } from './all-finite.js';
export {
  BatchNorm,
  BatchNorm1d,
  BatchNorm2d,
  type BatchNormOptions,
  type ChannelStatistics,
  channelStatistics,
  minimumTrainingRows,
  ONE_VALUE_PER_CHANNEL,
  oneValuePerChannelReason,
  valuesPerChannel,
} from './batch-norm.js';
export { channelM2, unbiasedVariance } from './channel-variance.js';
export { clipGradNorm } from './clip-grad-norm.js';
export {
  adaptiveWindow,
  type Pair,
  pairOf,
  type WindowGeometry,
  windowGeometry,
  windowOutputSize,
} from './conv-geometry.js';
export {
  Conv2d,
  type Conv2dOptions,
  checkImageInput,
  conv2dFootprint,
  geometryFor,
  type ProductFootprint,
} from './conv2d.js';
export { createKernels, KERNELS } from './create-kernels.js';
export { crossEntropy, type LossResult, softmaxRows } from './cross-entropy.js';
export { AlphaDropout, Dropout } from './dropout.js';
export { ERF_COEFFICIENTS, erf } from './erf.js';
export { applyFeatureTransform, type FeatureTransform } from './feature-transform.js';
export { Flatten } from './flatten.js';
export {
  col2imAdd,
  type FloatArray,
  forEachSampleRun,
  IM2COL_BLOCK_VALUES,
  im2col,
  im2colBlockRows,
  im2colWidth,
} from './im2col.js';
export type {
  AdamStep,
  ChannelLayout,
  Kernels,
  KernelsName,
  MatmulSpec,
  SgdStep,
} from './kernels.js';
export { LayerNorm, type LayerNormOptions } from './layer-norm.js';
export { Linear, type LinearOptions } from './linear.js';
export { type LrSchedule, learningRateAt, SCHEDULE_DEFAULTS } from './lr-schedule.js';
export {
  Container,
  checkStateFits,
  cloneStateDict,
  Module,
  namedModules,
  type StateDict,
  type StateSignature,
  type StateValue,
  signatureOf,
} from './module.js';
export { mseLoss } from './mse-loss.js';
export { Optimizer } from './optimizer.js';
export { Parameter } from './parameter.js';
export {
  adaptivePoolWindows,
  maxPoolKernel,
  meanPoolBackward,
  meanPoolKernel,
  type PoolWindows,
  poolWindows,
} from './pool-windows.js';
export {
  AdaptiveAvgPool2d,
  AvgPool2d,
  checkPoolPadding,
  MaxPool2d,
  type Pool2dOptions,
} from './pooling.js';
export { referenceKernels } from './reference-kernels.js';
export { Residual } from './residual.js';
export { Rng } from './rng.js';
export { Sequential } from './sequential.js';
export { SGD, SGD_DEFAULTS, type SgdOptions, sgdOptionsProblem } from './sgd.js';
export {
  copySliced,
  finish,
  finishYielding,
  SLICE_VALUES,
  type Sliced,
} from './slices.js';
export { StepArray } from './step-array.js';
export {
  FLOAT32_MAX,
  FLOAT32_RANGE_MESSAGE,
  FLOAT32_ROUNDING_MAX,
  numelOf,
  roundsToFiniteFloat32,
  Tensor,
} from './tensor.js';
export {
  WASM_TRAINING_MEMORY_BYTES,
  type WasmRunFrame,
  type WasmTrainingBytes,
  type WasmTrainingLayout,
  wasmTrainingBytes,
} from './wasm/wasm-kernels.js';
