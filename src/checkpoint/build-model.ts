import { NormserveError } from '../errors/index.js';
import { type Module, Sequential, type StateDict } from '../nn/index.js';
import type { BuildRngs } from './layers/layer-definition.js';
import { buildLayers, type LayerSpec } from './layers/registry.js';
import type { ModelConfig } from './model-config.js';

export type { BuildRngs };

/** One nn module from its config entry. Without `rngs.init`, weights start at zero (to be loaded). */
export function buildLayer(spec: LayerSpec, rngs: BuildRngs = {}): Module {
  return buildLayers([spec], rngs)[0]!;
}

/** A freshly initialised network for a config (PyTorch's default initialisation, seeded). */
export function buildSequential(layers: readonly LayerSpec[], rngs: BuildRngs = {}): Sequential {
  return new Sequential(buildLayers(layers, rngs));
}

/**
 * The network of a checkpoint: built from its config, tensors loaded and checked (every tensor
 * the config implies must be present with its shape and kind, and no other), in eval mode.
 */
export function networkFromCheckpoint(
  config: ModelConfig,
  state: StateDict,
  source = 'model.safetensors',
  rngs: BuildRngs = {},
): Sequential {
  const network = buildSequential(config.layers, rngs);
  try {
    network.loadStateDict(state);
  } catch (e) {
    if (e instanceof NormserveError)
      throw new NormserveError('CHECKPOINT_MISMATCH', `${source}: ${e.message}`);
    throw e;
  }
  return network.eval();
}
