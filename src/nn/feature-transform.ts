/**
 * A per-feature affine input transform, y = (x − shift)·scale, computed in float64 and stored as
 * float32. normserve models carry one (config.json `input_transform`) so they can take raw
 * features; training applies it to its data and eval applies it before layer 0.
 */
export interface FeatureTransform {
  shift: ArrayLike<number>;
  scale: ArrayLike<number>;
}

export function applyFeatureTransform(
  features: Float32Array,
  width: number,
  transform: FeatureTransform | undefined,
): Float32Array {
  if (!transform) return features;
  const out = new Float32Array(features.length);
  for (let i = 0; i < features.length; i++) {
    const j = i % width;
    out[i] = (features[i]! - transform.shift[j]!) * transform.scale[j]!;
  }
  return out;
}
