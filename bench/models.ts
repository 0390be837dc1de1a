/**
 * The models every engine benchmark runs: the bundled digits model (64-128-64-10, its input
 * transform folded), a wide 784-1024-1024-10 BatchNorm MLP with random weights and statistics, and
 * the bundled digits-cnn ([1, 8, 8]: conv, a residual block, max pooling, conv, global average
 * pooling, Linear; BatchNorm2d and pixel/16 folded), each compiled once (the fused plan is what
 * every engine, normserve's and the peers', runs).
 */
import {
  buildSequential,
  type Checkpoint,
  type LayerSpec,
  MODEL_FORMAT,
  modelConfigSchema,
} from '../src/checkpoint/index.js';
import { CompiledModel } from '../src/inference/index.js';
import { Rng, type Sequential, type StateDict } from '../src/nn/index.js';
import { loadModelDirectory } from '../src/repository/index.js';
import { bundledVersionDir } from '../test/helpers/bundled-models.js';

export interface BenchModel {
  name: string;
  model: CompiledModel;
  inputWidth: number;
  /** The per-sample input shape: [features], or [C, H, W] (an ONNX peer's input is [rows, ...shape]). */
  inputShape: readonly number[];
  /** Batch sizes this model is measured at, when fewer than the benchmark's. */
  batches?: readonly number[];
}

const batchNorm = {
  type: 'batchnorm1d',
  num_features: 1024,
  eps: 1e-5,
  momentum: 0.1,
  affine: true,
  track_running_stats: true,
} as const;

/** The wide model's layers: 784-1024-1024-10 with BatchNorm, ReLU and Dropout. */
export const WIDE_LAYERS: LayerSpec[] = [
  { type: 'linear', in_features: 784, out_features: 1024, bias: true },
  batchNorm,
  { type: 'relu' },
  { type: 'dropout', p: 0.2 },
  { type: 'linear', in_features: 1024, out_features: 1024, bias: true },
  batchNorm,
  { type: 'relu' },
  { type: 'dropout', p: 0.2 },
  { type: 'linear', in_features: 1024, out_features: 10, bias: true },
];

/** A wide MLP like an MNIST model: 784-1024-1024-10 with BatchNorm and ReLU, random weights and statistics. */
export function wideNetwork(): Sequential {
  const rng = new Rng(7);
  const network = buildSequential(WIDE_LAYERS, { init: rng });
  const state: StateDict = network.stateDict();
  for (const [name, value] of state) {
    if (typeof value === 'bigint') continue;
    const data = value.data;
    if (name.endsWith('running_mean'))
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * 0.1;
    if (name.endsWith('running_var'))
      for (let i = 0; i < data.length; i++) data[i] = 0.5 + rng.next();
  }
  return network.eval();
}

/** The wide network as a checkpoint named "wide" (classification, labels "0".."9"), for the serving benchmarks. */
export function wideCheckpoint(): Checkpoint {
  return {
    config: modelConfigSchema.parse({
      format: MODEL_FORMAT,
      name: 'wide',
      task: 'classification',
      input_shape: [784],
      labels: Array.from({ length: 10 }, (_, i) => String(i)),
      description: 'benchmark model: 784-1024-1024-10, random weights',
      layers: WIDE_LAYERS,
    }),
    state: wideNetwork().stateDict(),
  };
}

export async function benchModels(maxBatchSize = 4096): Promise<BenchModel[]> {
  const digits = (await loadModelDirectory(bundledVersionDir('digits'))).checkpoint;
  const cnn = (await loadModelDirectory(bundledVersionDir('digits-cnn'))).checkpoint;
  return [
    {
      name: 'digits 64-128-64-10',
      model: new CompiledModel(
        digits.network,
        digits.config.input_transform,
        maxBatchSize,
        digits.config.input_shape,
      ),
      inputWidth: 64,
      inputShape: [64],
    },
    {
      name: 'wide 784-1024-1024-10',
      model: new CompiledModel(wideNetwork(), undefined, maxBatchSize, [784]),
      inputWidth: 784,
      inputShape: [784],
    },
    {
      name: 'digits-cnn [1, 8, 8]',
      model: new CompiledModel(
        cnn.network,
        cnn.config.input_transform,
        maxBatchSize,
        cnn.config.input_shape,
      ),
      inputWidth: 64,
      inputShape: cnn.config.input_shape,
      // 4096 images take the JS reference seconds per call; issue 10 asks for 1 and 256.
      batches: [1, 32, 256],
    },
  ];
}

/** The benchmark input: `rows` rows of seeded uniform values in [0, 16) (digits' pixel range). */
export function benchInput(rows: number, width: number, seed = 1): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * width }, () => rng.uniform(0, 16));
}
