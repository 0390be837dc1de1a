import { z } from 'zod';
import { LayerNorm } from '../../nn/index.js';
import { defineLayer, eps, positiveInt, showShape } from './layer-definition.js';

/** nn.LayerNorm over the trailing dimensions `normalized_shape` of each sample. */
export const layerNormLayer = defineLayer({
  type: 'layernorm',
  torch: 'nn.LayerNorm',
  schema: z.strictObject({
    type: z.literal('layernorm'),
    normalized_shape: z.union([positiveInt.transform((n) => [n]), z.array(positiveInt).min(1)]),
    eps,
    elementwise_affine: z.boolean().default(true),
  }),
  outputShape(spec, input, ctx) {
    const ns = spec.normalized_shape;
    const tail = input.slice(input.length - ns.length);
    if (ns.length > input.length || tail.some((d, i) => d !== ns[i])) {
      ctx.fail(
        input.length === 1
          ? `normalized_shape [${ns}] does not match the previous width ${input[0]}`
          : `normalized_shape ${showShape(ns)} does not match the trailing dimensions of ${showShape(input)}`,
      );
    }
    return input;
  },
  state: (spec) =>
    spec.elementwise_affine
      ? [
          { name: 'weight', kind: 'parameter', shape: spec.normalized_shape },
          { name: 'bias', kind: 'parameter', shape: spec.normalized_shape },
        ]
      : [],
  build: (spec) =>
    new LayerNorm({
      normalizedShape: spec.normalized_shape,
      eps: spec.eps,
      elementwiseAffine: spec.elementwise_affine,
    }),
});
