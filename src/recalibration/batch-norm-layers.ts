import { NormserveError } from '../errors/index.js';
import { BatchNorm, type Sequential, type Tensor } from '../nn/index.js';

/** A BatchNorm of the network with its index among the network's modules. */
export interface BatchNormLayer {
  index: number;
  bn: BatchNorm;
}

/**
 * The network's BatchNorms in order (top-level modules: networks built from checkpoints are
 * flat); NOT_RECALIBRATABLE when there is none.
 */
export function batchNormLayers(network: Sequential): BatchNormLayer[] {
  const layers: BatchNormLayer[] = [];
  network.modules.forEach((m, index) => {
    if (m instanceof BatchNorm) layers.push({ index, bn: m });
  });
  if (layers.length === 0) {
    throw new NormserveError(
      'NOT_RECALIBRATABLE',
      'the network has no BatchNorm layer: there are no statistics to recalibrate',
    );
  }
  return layers;
}

/** Runs modules [0, end) on x in their current modes. */
export function forwardPrefix(network: Sequential, x: Tensor, end: number): Tensor {
  let h = x;
  for (let i = 0; i < end; i++) h = network.modules[i]!.forward(h);
  return h;
}
