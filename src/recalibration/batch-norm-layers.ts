import { NormserveError } from '../errors/index.js';
import { BatchNorm, namedModules, type Sequential } from '../nn/index.js';

/** A BatchNorm of the network: its path (state-dict prefix) and its top-level layer index. */
export interface BatchNormLayer {
  /** Index of the top-level layer: the BatchNorm's own, or that of the block holding it. */
  index: number;
  /** `"5"`, or `"3.body.1"` for one inside a residual block. */
  path: string;
  bn: BatchNorm;
}

/**
 * The network's BatchNorms in the order a forward pass runs them (named_modules order: depth
 * first, as Sequential and residual blocks execute), nested ones included; NOT_RECALIBRATABLE
 * when there is none.
 */
export function batchNormLayers(network: Sequential): BatchNormLayer[] {
  const layers: BatchNormLayer[] = [];
  for (const [path, m] of namedModules(network)) {
    if (m instanceof BatchNorm) layers.push({ index: Number(path.split('.')[0]), path, bn: m });
  }
  if (layers.length === 0) {
    throw new NormserveError(
      'NOT_RECALIBRATABLE',
      'the network has no BatchNorm layer: there are no statistics to recalibrate',
    );
  }
  return layers;
}
