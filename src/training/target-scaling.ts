import { type LayerSpec, layerDefinition } from '../checkpoint/index.js';
import { NormserveError } from '../errors/index.js';
import type { Sequential } from '../nn/index.js';

/**
 * Regression targets standardized for training: z = (y − mean) / std, from the training rows
 * (float64, population std as StandardScaler; std 1 for a constant target). A target in grams or
 * dollars would otherwise take the output bias thousands of optimizer steps to reach, and its
 * MSE would dwarf weight decay. The served model outputs y itself: after training, y = std·z +
 * mean is folded into the last Linear (W′ = std·W, b′ = std·b + mean), so the checkpoint format
 * needs no output transform and PyTorch loads the same numbers.
 */
export interface TargetScale {
  mean: number;
  std: number;
}

export function fitTargetScale(targets: Float32Array): TargetScale {
  let sum = 0;
  for (const y of targets) sum += y;
  const mean = targets.length > 0 ? sum / targets.length : 0;
  let sq = 0;
  for (const y of targets) sq += (y - mean) * (y - mean);
  const std = targets.length > 0 ? Math.sqrt(sq / targets.length) : 0;
  return { mean, std: std > 1e-12 ? std : 1 };
}

/** (y − mean) / std for each target, as float32. */
export function standardizeTargets(targets: Float32Array, scale: TargetScale): Float32Array {
  return targets.map((y) => (y - scale.mean) / scale.std);
}

/** Throws unless the last layer can absorb the target scale (its record's `targetScale`). */
export function checkTargetScalable(layers: readonly LayerSpec[]): void {
  const last = layers.at(-1);
  const answer = last && layerDefinition(last).targetScale?.(last);
  if (answer !== 'absorbs') {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `data.target_scaling "standard" folds the target's mean and std into the last layer, which must be a linear layer with a bias; layers[${layers.length - 1}] is ${answer === 'no-bias' ? `a ${last?.type} layer without bias` : `"${last?.type}"`}: set data.target_scaling to "none"`,
    );
  }
}

/**
 * The last module's `weight` and `bias` (PyTorch's names): checkTargetScalable let only a layer
 * whose output is W·x + b be last.
 */
function lastAffineTerms(network: Sequential): { w: Float32Array; b: Float32Array } {
  const parameters = new Map(network.modules.at(-1)?.namedParameters());
  const [weight, bias] = [parameters.get('weight'), parameters.get('bias')];
  if (weight === undefined || bias === undefined) {
    throw new NormserveError(
      'INTERNAL',
      'target scaling needs a last layer with a weight and bias',
    );
  }
  return { w: weight.value.data, b: bias.value.data };
}

/**
 * `fold`: the network's z outputs become y (W′ = std·W, b′ = std·b + mean). `unfold`: the
 * inverse, for a checkpoint that outputs y and is fine-tuned on standardized targets.
 */
export function applyTargetScale(
  network: Sequential,
  scale: TargetScale,
  direction: 'fold' | 'unfold',
): void {
  const { w, b } = lastAffineTerms(network);
  if (direction === 'fold') {
    for (let i = 0; i < w.length; i++) w[i] = w[i]! * scale.std;
    for (let i = 0; i < b.length; i++) b[i] = b[i]! * scale.std + scale.mean;
  } else {
    for (let i = 0; i < w.length; i++) w[i] = w[i]! / scale.std;
    for (let i = 0; i < b.length; i++) b[i] = (b[i]! - scale.mean) / scale.std;
  }
}
