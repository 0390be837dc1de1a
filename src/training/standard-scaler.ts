import type { InputTransform } from '../checkpoint/model-config.js';

/**
 * Standardisation fitted on the training rows, as sklearn's StandardScaler: shift = mean,
 * scale = 1/std with the population std (÷n), and scale 1 for a constant feature (a pixel that is
 * always 0 stays 0 instead of dividing by zero). Accumulated in float64.
 */
export function fitStandardScaler(
  features: Float32Array,
  rows: number,
  width: number,
): InputTransform {
  const shift: number[] = [];
  const scale: number[] = [];
  for (let j = 0; j < width; j++) {
    let sum = 0;
    for (let r = 0; r < rows; r++) sum += features[r * width + j]!;
    const mean = sum / rows;
    let sq = 0;
    for (let r = 0; r < rows; r++) {
      const d = features[r * width + j]! - mean;
      sq += d * d;
    }
    const std = Math.sqrt(sq / rows);
    shift.push(Math.fround(mean));
    scale.push(std > 1e-12 ? Math.fround(1 / std) : 1);
  }
  return { shift, scale };
}
