/**
 * Networks for fused-path tests: every arrangement of layers the compiler treats differently,
 * with random weights, BatchNorm affine parameters and running statistics (seeded).
 */
import { buildSequential, type LayerSpec } from '../../src/checkpoint/index.js';
import { BatchNorm, type FeatureTransform, Rng, type Sequential } from '../../src/nn/index.js';

export const linear = (i: number, o: number, bias = true): LayerSpec => ({
  type: 'linear',
  in_features: i,
  out_features: o,
  bias,
});
export const bn = (n: number, affine = true): LayerSpec => ({
  type: 'batchnorm1d',
  num_features: n,
  eps: 1e-5,
  momentum: 0.1,
  affine,
  track_running_stats: true,
});
export const ln = (n: number): LayerSpec => ({
  type: 'layernorm',
  normalized_shape: [n],
  eps: 1e-5,
  elementwise_affine: true,
});
export const relu: LayerSpec = { type: 'relu' };
export const dropout: LayerSpec = { type: 'dropout', p: 0.3 };

/** A network with random weights, BatchNorm affine parameters and running statistics. */
export function randomNetwork(layers: LayerSpec[], seed: number): Sequential {
  const rng = new Rng(seed);
  const network = buildSequential(layers, { init: rng, dropout: rng });
  for (const m of network.modules) {
    if (m instanceof BatchNorm) {
      for (let k = 0; k < m.numFeatures; k++) {
        m.runningMean.data[k] = rng.normal();
        m.runningVar.data[k] = 0.2 + 2 * rng.next();
        if (m.weight && m.bias) {
          m.weight.value.data[k] = 0.5 + rng.next();
          m.bias.value.data[k] = rng.normal() * 0.3;
        }
      }
      m.numBatchesTracked = 17;
    }
  }
  return network.eval();
}

export function randomInput(rows: number, width: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * width }, () => rng.normal() * 3);
}

export const transform = (width: number, seed: number): FeatureTransform => {
  const rng = new Rng(seed);
  return {
    shift: Array.from({ length: width }, () => rng.normal()),
    scale: Array.from({ length: width }, () => 0.5 + rng.next()),
  };
};

/** Every arrangement the compiler treats differently. */
export const combinations: Record<string, LayerSpec[]> = {
  'Linear → BN → ReLU → Dropout → Linear (BN into the previous rows)': [
    linear(6, 8),
    bn(8),
    relu,
    dropout,
    linear(8, 3),
  ],
  'BN first, then Linear (BN into the next columns)': [bn(6), linear(6, 5), relu, linear(5, 2)],
  'Linear → ReLU → BN → Linear (BN after the activation, into the next columns)': [
    linear(6, 7),
    relu,
    bn(7),
    linear(7, 3),
  ],
  'two BNs in a row between Linears': [linear(6, 5), relu, bn(5), bn(5), linear(5, 4)],
  'BN without affine parameters': [linear(6, 5), bn(5, false), relu, linear(5, 3)],
  'Linear without bias, then BN': [linear(6, 5, false), bn(5), relu, linear(5, 3)],
  'BN at the end (stand-alone affine kernel)': [linear(6, 5), relu, linear(5, 4), relu, bn(4)],
  'BN before LayerNorm (no Linear to fold into)': [linear(6, 5), relu, bn(5), ln(5), linear(5, 3)],
  'LayerNorm block with GELU': [
    linear(6, 8),
    ln(8),
    { type: 'gelu', approximate: 'none' },
    linear(8, 3),
  ],
  'SELU + AlphaDropout': [
    linear(6, 8),
    { type: 'selu' },
    { type: 'alpha_dropout', p: 0.1 },
    linear(8, 3),
  ],
  'every activation': [
    linear(6, 6),
    bn(6),
    { type: 'leaky_relu', negative_slope: 0.2 },
    linear(6, 6),
    { type: 'tanh' },
    linear(6, 6),
    { type: 'sigmoid' },
    linear(6, 6),
    { type: 'gelu', approximate: 'tanh' },
    { type: 'identity' },
    linear(6, 2),
  ],
  'LayerNorm without affine parameters, then Tanh': [
    linear(6, 5),
    { type: 'layernorm', normalized_shape: [5], eps: 1e-5, elementwise_affine: false },
    { type: 'tanh' },
    linear(5, 3),
  ],
  'LayerNorm first (an input transform stays a stand-alone affine kernel)': [
    ln(6),
    relu,
    linear(6, 3),
  ],
  'BN then Sigmoid first (affine kernel with an activation)': [
    bn(6),
    { type: 'sigmoid' },
    linear(6, 3),
  ],
  'activation first (stand-alone activation kernel)': [
    relu,
    linear(6, 4),
    bn(4),
    relu,
    linear(4, 2),
  ],
};
