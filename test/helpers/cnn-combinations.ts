/**
 * Convolutional networks for fused-path tests: every arrangement of layers the compiler treats
 * differently (and the shapes the WebAssembly kernels handle apart: strides, dilation, padding or
 * none, positions and channels that are not multiples of the GEMM's tiles), with random weights,
 * BatchNorm affine parameters and running statistics (seeded, nested BatchNorms too).
 */
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';
import {
  BatchNorm,
  type FeatureTransform,
  namedModules,
  Rng,
  type Sequential,
} from '../../src/nn/index.js';
import { FUSION_ATOL } from './tolerances.js';

export const spec = (value: unknown): LayerSpec => layerSchema.parse(value);
export const conv = (i: number, o: number, extra: Record<string, unknown> = {}) =>
  spec({ type: 'conv2d', in_channels: i, out_channels: o, kernel_size: 3, padding: 1, ...extra });
export const bn2d = (c: number) => spec({ type: 'batchnorm2d', num_features: c });
export const relu = spec({ type: 'relu' });

/** The CNN: conv-bn-relu, a residual block, maxpool, conv-bn-relu, global pool, linear. */
export const digitsCnn: LayerSpec[] = [
  conv(1, 16),
  bn2d(16),
  relu,
  spec({
    type: 'residual',
    layers: [
      conv(16, 16, { bias: false }),
      bn2d(16),
      relu,
      conv(16, 16, { bias: false }),
      bn2d(16),
    ],
  }),
  spec({ type: 'maxpool2d', kernel_size: 2 }),
  conv(16, 32),
  bn2d(32),
  relu,
  spec({ type: 'adaptive_avgpool2d', output_size: 1 }),
  spec({ type: 'flatten' }),
  spec({ type: 'linear', in_features: 32, out_features: 10 }),
];

/** Random weights, BatchNorm affine parameters and running statistics (nested ones too). */
export function randomNetwork(layers: LayerSpec[], seed: number): Sequential {
  const rng = new Rng(seed);
  const network = buildSequential(layers, { init: rng, dropout: rng });
  for (const [, m] of namedModules(network)) {
    if (!(m instanceof BatchNorm)) continue;
    for (let k = 0; k < m.numFeatures; k++) {
      m.runningMean.data[k] = rng.normal() * 0.5;
      m.runningVar.data[k] = 0.2 + 2 * rng.next();
      if (m.weight && m.bias) {
        m.weight.value.data[k] = 0.5 + rng.next();
        m.bias.value.data[k] = rng.normal() * 0.3;
      }
    }
  }
  return network.eval();
}

export function randomInput(rows: number, width: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * width }, () => rng.uniform(0, 16));
}

const pixelScale = (width: number): FeatureTransform => ({
  shift: new Array(width).fill(0),
  scale: new Array(width).fill(1 / 16),
});
const standardize = (width: number, seed: number): FeatureTransform => {
  const rng = new Rng(seed);
  return {
    shift: Array.from({ length: width }, () => rng.uniform(0, 8)),
    scale: Array.from({ length: width }, () => 0.1 + rng.next() * 0.3),
  };
};

export interface CnnCase {
  layers: LayerSpec[];
  inputShape: number[];
  transform?: FeatureTransform;
  /**
   * How far a float32 evaluation (the wasm engine, onnxruntime, PyTorch) may be from the float64
   * reference executor, when more than OUTPUT_ATOL: a LayerNorm over 4 values divides the rounding
   * of its inputs by their small deviation.
   */
  float32Atol?: number;
}

export const cnnCases: Record<string, CnnCase> = {
  "the issue's CNN, pixel/16 folded into the first conv": {
    layers: digitsCnn,
    inputShape: [1, 8, 8],
    transform: pixelScale(64),
  },
  "the issue's CNN, a per-pixel standardization (cannot fold through padding: affine step)": {
    layers: digitsCnn,
    inputShape: [1, 8, 8],
    transform: standardize(64, 3),
  },
  'BatchNorm2d first into an unpadded conv (folds into its columns)': {
    layers: [bn2d(2), conv(2, 3, { padding: 0 }), relu, spec({ type: 'flatten' })],
    inputShape: [2, 5, 5],
  },
  'BatchNorm2d first into a padded conv (stand-alone per-channel affine)': {
    layers: [bn2d(2), conv(2, 3), relu, spec({ type: 'flatten' })],
    inputShape: [2, 5, 5],
  },
  'conv → ReLU → BN2d → avgpool (exclude pad) → flatten → BN1d → linear': {
    layers: [
      conv(2, 4, { stride: 2, dilation: [1, 2], padding: [1, 2] }),
      relu,
      bn2d(4),
      spec({
        type: 'avgpool2d',
        kernel_size: 3,
        stride: 2,
        padding: 1,
        count_include_pad: false,
      }),
      spec({ type: 'flatten' }),
      spec({ type: 'batchnorm1d', num_features: 24 }),
      spec({ type: 'linear', in_features: 24, out_features: 3 }),
    ],
    inputShape: [2, 7, 9],
  },
  'conv → dropout → BN2d (folds through the dropout) → maxpool(3, 2, 1) → global pool': {
    layers: [
      conv(3, 4, { bias: false }),
      spec({ type: 'dropout', p: 0.3 }),
      bn2d(4),
      spec({ type: 'maxpool2d', kernel_size: 3, stride: 2, padding: 1 }),
      relu,
      spec({ type: 'adaptive_avgpool2d', output_size: [2, 1] }),
      spec({ type: 'flatten' }),
    ],
    inputShape: [3, 6, 5],
  },
  'conv → flatten → BN1d over C·H·W (into the conv rows: not per channel, so next linear)': {
    layers: [
      conv(1, 2, { padding: 0 }),
      spec({ type: 'flatten' }),
      spec({ type: 'batchnorm1d', num_features: 18 }),
      spec({ type: 'linear', in_features: 18, out_features: 4 }),
    ],
    inputShape: [1, 5, 5],
  },
  'conv → ReLU → flatten → BN1d → BN1d (read through the first) → linear: taps finer than the conv':
    {
      layers: [
        conv(2, 3),
        relu,
        spec({ type: 'flatten' }),
        spec({ type: 'batchnorm1d', num_features: 48 }),
        spec({ type: 'batchnorm1d', num_features: 48 }),
        spec({ type: 'linear', in_features: 48, out_features: 3 }),
      ],
      inputShape: [2, 4, 4],
    },
  'the [C, H, W] input flattened → BN1d → linear (a tap of the input per feature)': {
    layers: [
      spec({ type: 'flatten' }),
      spec({ type: 'batchnorm1d', num_features: 8 }),
      spec({ type: 'linear', in_features: 8, out_features: 3 }),
    ],
    inputShape: [2, 2, 2],
  },
  'nested residual blocks, LayerNorm over [C, H, W] and over W': {
    float32Atol: FUSION_ATOL,
    layers: [
      conv(1, 3),
      spec({
        type: 'residual',
        layers: [
          conv(3, 3),
          bn2d(3),
          spec({ type: 'residual', layers: [conv(3, 3), bn2d(3)] }),
          spec({ type: 'layernorm', normalized_shape: [3, 4, 4] }),
        ],
      }),
      spec({ type: 'layernorm', normalized_shape: 4, elementwise_affine: false }),
      spec({ type: 'gelu' }),
      spec({ type: 'flatten' }),
    ],
    inputShape: [1, 4, 4],
  },
  'stride 2, 5 channels, 20 positions (partial GEMM panels and row tiles), tanh after the conv': {
    layers: [
      conv(3, 5, { stride: 2 }),
      spec({ type: 'tanh' }),
      conv(5, 6, { kernel_size: [2, 3], padding: 0 }),
      relu,
      spec({ type: 'flatten' }),
      spec({ type: 'linear', in_features: 54, out_features: 4 }),
    ],
    inputShape: [3, 7, 9],
  },
  'avgpool counting the padding (PyTorch default), maxpool with stride 1, conv with leaky ReLU': {
    layers: [
      conv(2, 4, { kernel_size: 1, padding: 0 }),
      spec({ type: 'leaky_relu', negative_slope: 0.1 }),
      spec({ type: 'avgpool2d', kernel_size: 3, stride: 1, padding: 1 }),
      spec({ type: 'maxpool2d', kernel_size: 2, stride: 1 }),
      spec({ type: 'adaptive_avgpool2d', output_size: [3, 2] }),
      spec({ type: 'flatten' }),
    ],
    inputShape: [2, 6, 5],
  },
  'a residual block that starts with an activation and one that is only dropout': {
    layers: [
      conv(1, 2),
      spec({ type: 'residual', layers: [relu, conv(2, 2)] }),
      spec({ type: 'residual', layers: [spec({ type: 'dropout', p: 0.5 })] }),
      spec({ type: 'flatten' }),
    ],
    inputShape: [1, 3, 3],
  },
};
