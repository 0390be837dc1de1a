import { z } from 'zod';
import { Linear } from '../../nn/index.js';
import { defineLayer, OUTPUT_AND_INPUT_GRAD, positiveInt, showShape } from './layer-definition.js';

/** nn.Linear on a flat input: [in_features] → [out_features]. */
export const linearLayer = defineLayer({
  type: 'linear',
  torch: 'nn.Linear',
  schema: z.strictObject({
    type: z.literal('linear'),
    in_features: positiveInt,
    out_features: positiveInt,
    bias: z.boolean().default(true),
  }),
  outputShape(spec, input, ctx) {
    if (input.length !== 1) {
      ctx.fail(
        `linear needs a flat input [features], got ${showShape(input)}; add a flatten layer before it`,
      );
    }
    if (spec.in_features !== input[0])
      ctx.fail(`in_features ${spec.in_features} does not match the previous width ${input[0]}`);
    return [spec.out_features];
  },
  state: (spec) => [
    { name: 'weight', kind: 'parameter', shape: [spec.out_features, spec.in_features] },
    ...(spec.bias
      ? [{ name: 'bias', kind: 'parameter', shape: [spec.out_features] } as const]
      : []),
  ],
  build: (spec, ctx) =>
    new Linear(
      { inFeatures: spec.in_features, outFeatures: spec.out_features, bias: spec.bias },
      ctx.rngs.init,
    ),
  stepArrays: OUTPUT_AND_INPUT_GRAD,
});
