import { z } from 'zod';
import { Residual } from '../../nn/index.js';
import { defineLayer, showShape } from './layer-definition.js';
import type { LayerSpec } from './registry.js';

/** A residual block's config entry; written out because it nests the layer union itself. */
export interface ResidualLayerSpec {
  type: 'residual';
  layers: LayerSpec[];
}

/**
 * The residual block `{"type": "residual", "layers": [...]}`: out = relu(body(x) + x), the nested
 * layers building `body` (tensors `i.body.j.<name>`). `layer` is the layer union, passed in lazily
 * because the union contains this block.
 */
export function residualLayer(layer: () => z.ZodType<LayerSpec>) {
  return defineLayer({
    type: 'residual',
    torch: 'Residual (out = relu(body(x) + x), tools/torch-eval-model.py)',
    schema: z.strictObject({
      type: z.literal('residual'),
      layers: z.array(z.lazy(layer)).min(1, 'a residual block needs at least one layer'),
    }),
    outputShape(spec, input, ctx) {
      const out = ctx.chain(spec.layers, input);
      if (out.length !== input.length || out.some((d, i) => d !== input[i])) {
        ctx.fail(
          `the body maps ${showShape(input)} to ${showShape(out)}; the identity skip needs the same shape`,
        );
      }
      return out;
    },
    build: (spec, ctx) => new Residual(ctx.buildLayers(spec.layers)),
    children: (spec) => spec.layers,
    childName: Residual.childName,
  });
}
