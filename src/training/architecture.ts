import { z } from 'zod';
import { type LayerSpec, layerSchema } from '../checkpoint/model-config.js';

/**
 * The default network when a training config names no `layers`: for each hidden width a
 * `Linear → norm → ReLU → Dropout` block, then a Linear to the outputs (one per class, or one for
 * regression). The defaults are the bundled digits model's shape (128, 64, BatchNorm1d, p = 0.2).
 */
export const architectureSchema = z.strictObject({
  /** Hidden widths, input side first; empty = a single Linear (logistic or linear regression). */
  hidden: z.array(z.number().int().positive()).max(16).default([128, 64]),
  norm: z.enum(['batchnorm', 'layernorm', 'none']).default('batchnorm'),
  /** Dropout probability after each block's activation; 0 adds no Dropout layer. */
  dropout: z.number().min(0).lt(1).default(0.2),
});
export type Architecture = z.output<typeof architectureSchema>;

/** The layers of an architecture for the given input and output widths. */
export function layersFromArchitecture(
  architecture: Architecture,
  inputWidth: number,
  outputWidth: number,
): LayerSpec[] {
  // Through the layer schema, so every field takes PyTorch's default from its one definition.
  const layers: LayerSpec[] = [];
  const add = (layer: Record<string, unknown>) => layers.push(layerSchema.parse(layer));
  let width = inputWidth;
  for (const hidden of architecture.hidden) {
    add({ type: 'linear', in_features: width, out_features: hidden });
    if (architecture.norm === 'batchnorm') add({ type: 'batchnorm1d', num_features: hidden });
    if (architecture.norm === 'layernorm') add({ type: 'layernorm', normalized_shape: [hidden] });
    add({ type: 'relu' });
    if (architecture.dropout > 0) add({ type: 'dropout', p: architecture.dropout });
    width = hidden;
  }
  add({ type: 'linear', in_features: width, out_features: outputWidth });
  return layers;
}
