import { NormserveError } from '../errors/index.js';
import { BatchNorm, namedModules, type Sequential, type Tensor } from '../nn/index.js';

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

/** Thrown by the pre-hook to stop the forward pass once the input has been seen. */
const STOP = Symbol('stop forward');

/**
 * The input `layer` receives when the network runs on x in the modules' current modes: the
 * forward pass stops there (a pre-hook on the BatchNorm), so later layers cost nothing.
 */
export function batchNormInput(network: Sequential, layer: BatchNormLayer, x: Tensor): Tensor {
  let seen: Tensor | undefined;
  layer.bn.preHook = (input) => {
    seen = input;
    throw STOP;
  };
  try {
    network.forward(x);
  } catch (e) {
    if (e !== STOP) throw e;
  } finally {
    layer.bn.preHook = undefined;
  }
  if (!seen) throw new Error(`BatchNorm ${layer.path} is not on the forward path`);
  return seen;
}
