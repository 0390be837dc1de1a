import { z } from 'zod';
import { BatchNorm1d, BatchNorm2d } from '../../nn/index.js';
import {
  defineLayer,
  eps,
  imageInput,
  type LayerStateEntry,
  OUTPUT_AND_INPUT_GRAD,
  positiveInt,
  probability,
  showShape,
} from './layer-definition.js';
import {
  f32Bytes,
  runFrame,
  type TrainingFootprint,
  type TrainingFootprintContext,
} from './training-footprint.js';

/** PyTorch's _BatchNorm arguments, shared by BatchNorm1d and BatchNorm2d. */
const batchNormFields = {
  num_features: positiveInt,
  eps,
  momentum: probability.nullable().default(0.1),
  affine: z.boolean().default(true),
  track_running_stats: z
    .literal(true, {
      error:
        'only track_running_stats=true is supported: without running statistics, eval would use batch statistics',
    })
    .default(true),
};

const options = (spec: {
  num_features: number;
  eps: number;
  momentum: number | null;
  affine: boolean;
}) => ({
  numFeatures: spec.num_features,
  eps: spec.eps,
  momentum: spec.momentum,
  affine: spec.affine,
});

/** _BatchNorm's state_dict: weight and bias if affine, then the running statistics and count. */
const batchNormState = (spec: { num_features: number; affine: boolean }): LayerStateEntry[] => {
  const c = [spec.num_features];
  return [
    ...(spec.affine
      ? [
          { name: 'weight', kind: 'parameter', shape: c } as const,
          { name: 'bias', kind: 'parameter', shape: c } as const,
        ]
      : []),
    { name: 'running_mean', kind: 'buffer', shape: c },
    { name: 'running_var', kind: 'buffer', shape: c },
    { name: 'num_batches_tracked', kind: 'count', shape: [] },
  ];
};

/**
 * nn/batch-norm.ts on the kernels: x, dy and (in eval) the output in ordinary arrays are copied;
 * the per-channel statistics, float64, always are. The same passes for [C] and [C, H, W].
 */
const batchNormTrainingFootprint = (
  _spec: unknown,
  { input, output, batchSize, evalRows, inputInMemory, gradientInMemory }: TrainingFootprintContext,
): TrainingFootprint => {
  const channels = Array<number>(7).fill(input[0]! * 8);
  const x = inputInMemory ? 0 : f32Bytes(batchSize, input);
  const dy = gradientInMemory ? 0 : f32Bytes(batchSize, output);
  return {
    workArrays: [],
    forward: [
      runFrame(x, ...channels.slice(0, 1)),
      runFrame(x, ...channels.slice(0, 2)),
      runFrame(x, ...channels.slice(0, 4)),
    ],
    backward: [runFrame(dy, x, ...channels.slice(0, 4)), runFrame(dy, x, ...channels.slice(0, 5))],
    eval: evalRows.map((chunk) => [
      runFrame(f32Bytes(chunk, input), f32Bytes(chunk, output), ...channels.slice(0, 4)),
    ]),
  };
};

/** nn.BatchNorm1d on [C] (statistics per feature over the batch). */
export const batchNorm1dLayer = defineLayer({
  type: 'batchnorm1d',
  torch: 'nn.BatchNorm1d',
  schema: z.strictObject({ type: z.literal('batchnorm1d'), ...batchNormFields }),
  outputShape(spec, input, ctx) {
    if (input.length !== 1) {
      ctx.fail(
        `batchnorm1d needs a flat input [features], got ${showShape(input)}; use batchnorm2d for [C, H, W]`,
      );
    }
    if (spec.num_features !== input[0])
      ctx.fail(`num_features ${spec.num_features} does not match the previous width ${input[0]}`);
    return input;
  },
  build: (spec) => new BatchNorm1d(options(spec)),
  batchNormStatistics: true,
  state: batchNormState,
  stepArrays: OUTPUT_AND_INPUT_GRAD,
  trainingFootprint: batchNormTrainingFootprint,
});

/** nn.BatchNorm2d on [C, H, W] (statistics per channel over N·H·W). */
export const batchNorm2dLayer = defineLayer({
  type: 'batchnorm2d',
  torch: 'nn.BatchNorm2d',
  schema: z.strictObject({ type: z.literal('batchnorm2d'), ...batchNormFields }),
  outputShape(spec, input, ctx) {
    const [c] = imageInput('batchnorm2d', input, ctx);
    if (spec.num_features !== c) {
      ctx.fail(
        `num_features ${spec.num_features} does not match the ${c} channels of ${showShape(input)}`,
      );
    }
    return input;
  },
  build: (spec) => new BatchNorm2d(options(spec)),
  batchNormStatistics: true,
  state: batchNormState,
  stepArrays: OUTPUT_AND_INPUT_GRAD,
  trainingFootprint: batchNormTrainingFootprint,
});
