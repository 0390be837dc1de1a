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
export { Adam, type AdamOptions, AdamW } from './adam.js';
export {
  BatchNorm,
  BatchNorm1d,
  BatchNorm2d,
  type BatchNormOptions,
  type ChannelStatistics,
  channelStatistics,
} from './batch-norm.js';
export { clipGradNorm } from './clip-grad-norm.js';
export { crossEntropy, type LossResult, softmaxRows } from './cross-entropy.js';
export { AlphaDropout, Dropout } from './dropout.js';
export { ERF_COEFFICIENTS, erf } from './erf.js';
export { applyFeatureTransform, type FeatureTransform } from './feature-transform.js';
export { LayerNorm, type LayerNormOptions } from './layer-norm.js';
export { Linear, type LinearOptions } from './linear.js';
export { type LrSchedule, learningRateAt } from './lr-schedule.js';
export { cloneStateDict, Module, type StateDict, type StateValue } from './module.js';
export { mseLoss } from './mse-loss.js';
export { Optimizer } from './optimizer.js';
export { Parameter } from './parameter.js';
export { Rng } from './rng.js';
export { Sequential } from './sequential.js';
export { SGD, type SgdOptions } from './sgd.js';
export { numelOf, Tensor } from './tensor.js';
