import { z } from 'zod';
import { Flatten } from '../../nn/index.js';
import { defineLayer } from './layer-definition.js';

/**
 * nn.Flatten: dimensions start_dim..end_dim of the batched tensor merged (start_dim ≥ 1: the batch
 * dimension 0 stays, so rows remain independent).
 */
export const flattenLayer = defineLayer({
  type: 'flatten',
  torch: 'nn.Flatten',
  schema: z.strictObject({
    type: z.literal('flatten'),
    start_dim: z
      .number()
      .int()
      .min(1, 'start_dim must be ≥ 1: the batch dimension 0 is never flattened')
      .default(1),
    end_dim: z.number().int().default(-1),
  }),
  outputShape(spec, input, ctx) {
    // The module's own rule on the batched shape [N, ...input], then the batch dropped again.
    try {
      return new Flatten({ startDim: spec.start_dim, endDim: spec.end_dim })
        .outputShape([1, ...input])
        .slice(1);
    } catch {
      return ctx.fail(
        `start_dim ${spec.start_dim} and end_dim ${spec.end_dim} do not fit the batched input [N, ${input.join(', ')}]`,
      );
    }
  },
  build: (spec) => new Flatten({ startDim: spec.start_dim, endDim: spec.end_dim }),
  outputViewsInput: true,
});
