import { NormserveError } from '../errors/index.js';
import {
  AlphaDropout,
  BatchNorm1d,
  Dropout,
  GELU,
  Identity,
  LayerNorm,
  LeakyReLU,
  Linear,
  type Module,
  ReLU,
  type Rng,
  SELU,
  Sequential,
  Sigmoid,
  type StateDict,
  Tanh,
} from '../nn/index.js';
import type { LayerSpec, ModelConfig } from './model-config.js';

/** Random streams for a new network: weight initialisation and dropout masks. */
export interface BuildRngs {
  init?: Rng | undefined;
  dropout?: Rng | undefined;
}

/** One nn module from its config entry. Without `rngs.init`, weights start at zero (to be loaded). */
export function buildLayer(spec: LayerSpec, rngs: BuildRngs = {}): Module {
  const rng = rngs.init;
  switch (spec.type) {
    case 'linear':
      return new Linear(
        { inFeatures: spec.in_features, outFeatures: spec.out_features, bias: spec.bias },
        rng,
      );
    case 'batchnorm1d':
      return new BatchNorm1d({
        numFeatures: spec.num_features,
        eps: spec.eps,
        momentum: spec.momentum,
        affine: spec.affine,
      });
    case 'layernorm':
      return new LayerNorm({
        normalizedShape: spec.normalized_shape,
        eps: spec.eps,
        elementwiseAffine: spec.elementwise_affine,
      });
    case 'relu':
      return new ReLU();
    case 'leaky_relu':
      return new LeakyReLU({ negativeSlope: spec.negative_slope });
    case 'gelu':
      return new GELU({ approximate: spec.approximate });
    case 'tanh':
      return new Tanh();
    case 'sigmoid':
      return new Sigmoid();
    case 'selu':
      return new SELU();
    case 'dropout':
      return new Dropout({ p: spec.p }, rngs.dropout);
    case 'alpha_dropout':
      return new AlphaDropout({ p: spec.p }, rngs.dropout);
    case 'identity':
      return new Identity();
  }
}

/** A freshly initialised network for a config (PyTorch's default initialisation, seeded). */
export function buildSequential(layers: readonly LayerSpec[], rngs: BuildRngs = {}): Sequential {
  return new Sequential(layers.map((spec) => buildLayer(spec, rngs)));
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
