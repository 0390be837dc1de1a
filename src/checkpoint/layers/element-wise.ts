import { z } from 'zod';
import {
  AlphaDropout,
  Dropout,
  GELU,
  Identity,
  LeakyReLU,
  ReLU,
  SELU,
  Sigmoid,
  Tanh,
} from '../../nn/index.js';
import {
  defineLayer,
  inplace,
  OUTPUT_AND_INPUT_GRAD,
  probability,
  type Shape,
  type StepArrays,
} from './layer-definition.js';

/** The output, the mask and the input's gradient (nn/dropout.ts). */
const DROPOUT_STEP_ARRAYS: StepArrays = { outputs: 2, inputs: 1 };

/** Element-wise layers keep the shape, whatever it is. */
const same = (_spec: unknown, input: Shape): Shape => input;

export const reluLayer = defineLayer({
  type: 'relu',
  torch: 'nn.ReLU',
  schema: z.strictObject({ type: z.literal('relu'), ...inplace }),
  outputShape: same,
  build: () => new ReLU(),
  stepArrays: OUTPUT_AND_INPUT_GRAD,
});

export const leakyReluLayer = defineLayer({
  type: 'leaky_relu',
  torch: 'nn.LeakyReLU',
  schema: z.strictObject({
    type: z.literal('leaky_relu'),
    negative_slope: z.number().default(0.01),
    ...inplace,
  }),
  outputShape: same,
  build: (spec) => new LeakyReLU({ negativeSlope: spec.negative_slope }),
});

export const geluLayer = defineLayer({
  type: 'gelu',
  torch: 'nn.GELU',
  schema: z.strictObject({
    type: z.literal('gelu'),
    approximate: z.enum(['none', 'tanh']).default('none'),
  }),
  outputShape: same,
  build: (spec) => new GELU({ approximate: spec.approximate }),
});

export const tanhLayer = defineLayer({
  type: 'tanh',
  torch: 'nn.Tanh',
  schema: z.strictObject({ type: z.literal('tanh') }),
  outputShape: same,
  build: () => new Tanh(),
});

export const sigmoidLayer = defineLayer({
  type: 'sigmoid',
  torch: 'nn.Sigmoid',
  schema: z.strictObject({ type: z.literal('sigmoid') }),
  outputShape: same,
  build: () => new Sigmoid(),
});

export const seluLayer = defineLayer({
  type: 'selu',
  torch: 'nn.SELU',
  schema: z.strictObject({ type: z.literal('selu'), ...inplace }),
  outputShape: same,
  build: () => new SELU(),
});

export const dropoutLayer = defineLayer({
  type: 'dropout',
  torch: 'nn.Dropout',
  schema: z.strictObject({ type: z.literal('dropout'), p: probability.default(0.5), ...inplace }),
  outputShape: same,
  build: (spec, ctx) => new Dropout({ p: spec.p }, ctx.rngs.dropout),
  stepArrays: DROPOUT_STEP_ARRAYS,
});

export const alphaDropoutLayer = defineLayer({
  type: 'alpha_dropout',
  torch: 'nn.AlphaDropout',
  schema: z.strictObject({
    type: z.literal('alpha_dropout'),
    p: probability.default(0.5),
    ...inplace,
  }),
  outputShape: same,
  build: (spec, ctx) => new AlphaDropout({ p: spec.p }, ctx.rngs.dropout),
  stepArrays: DROPOUT_STEP_ARRAYS,
});

export const identityLayer = defineLayer({
  type: 'identity',
  torch: 'nn.Identity',
  schema: z.strictObject({ type: z.literal('identity') }),
  outputShape: same,
  build: () => new Identity(),
});
