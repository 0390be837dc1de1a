/**
 * A layer too wide to allocate is the config's fault, named by its place, not an internal error
 * with a stack trace: V8 refuses a Float32Array of 200,000,000 × 64 values at once (beyond its
 * length limit), so these tests allocate nothing.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';

const huge = (): LayerSpec =>
  layerSchema.parse({ type: 'linear', in_features: 64, out_features: 200_000_000 });

describe('buildSequential', () => {
  it('names a top-level layer whose tensors cannot be allocated', () => {
    expect(() => buildSequential([huge()])).toThrow(
      expect.objectContaining({
        code: 'MODEL_CONFIG_INVALID',
        message: expect.stringMatching(
          /^layers\[0\] \(linear\): its tensors are too large to allocate \(/,
        ),
      }),
    );
  });

  it('names a nested layer by its path in the residual block', () => {
    const block = layerSchema.parse({
      type: 'residual',
      layers: [{ type: 'relu' }, { type: 'linear', in_features: 64, out_features: 200_000_000 }],
    });
    const relu = layerSchema.parse({ type: 'relu' });
    expect(() => buildSequential([relu, block])).toThrow(
      expect.objectContaining({
        code: 'MODEL_CONFIG_INVALID',
        message: expect.stringMatching(
          /^layers\[1\]\.layers\[1\] \(linear\): its tensors are too large/,
        ),
      }),
    );
  });
});
