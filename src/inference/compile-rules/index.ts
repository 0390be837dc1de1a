import { batchNormRule } from './batch-norm.js';
import type { CompileRule } from './compile-context.js';
import { conv2dRule } from './conv2d.js';
import {
  geluRule,
  leakyReluRule,
  reluRule,
  removedInEvalRule,
  seluRule,
  sigmoidRule,
  tanhRule,
} from './element-wise.js';
import { flattenRule } from './flatten.js';
import { layerNormRule } from './layer-norm.js';
import { linearRule } from './linear.js';
import { adaptiveAvgPool2dRule, avgPool2dRule, maxPool2dRule } from './pooling.js';
import { residualRule } from './residual.js';

export { batchNormAffine } from './batch-norm.js';
export {
  CENTRE_SHIFT,
  CompileContext,
  type CompileRule,
  type Draft,
  type FoldStatistics,
  foldCentre,
} from './compile-context.js';

/**
 * How each module kind (nn's Module.kind, PyTorch's class name) compiles: the inference half of a
 * layer type's definition (the rest is its record in src/checkpoint/layers/). A kind missing here
 * cannot be served; test/inference/compile-rules.test.ts checks every registered layer type has one.
 */
export const compileRules: Readonly<Record<string, CompileRule>> = {
  Linear: linearRule,
  Conv2d: conv2dRule,
  BatchNorm1d: batchNormRule,
  BatchNorm2d: batchNormRule,
  LayerNorm: layerNormRule,
  MaxPool2d: maxPool2dRule,
  AvgPool2d: avgPool2dRule,
  AdaptiveAvgPool2d: adaptiveAvgPool2dRule,
  Flatten: flattenRule,
  Residual: residualRule,
  ReLU: reluRule,
  LeakyReLU: leakyReluRule,
  GELU: geluRule,
  Tanh: tanhRule,
  Sigmoid: sigmoidRule,
  SELU: seluRule,
  Dropout: removedInEvalRule,
  AlphaDropout: removedInEvalRule,
  Identity: removedInEvalRule,
};
