/**
 * The wide model of the benchmarks: an MLP like an MNIST one, 784-1024-1024-10 with BatchNorm,
 * ReLU and Dropout, random weights and running statistics (seeded), as a network for the engine
 * benchmark and as a checkpoint for the HTTP and gRPC ones.
 */
import {
  buildSequential,
  type Checkpoint,
  type LayerSpec,
  MODEL_FORMAT,
  modelConfigSchema,
} from '../src/checkpoint/index.js';
import { Rng, type Sequential, type StateDict } from '../src/nn/index.js';

const batchNorm = {
  type: 'batchnorm1d',
  num_features: 1024,
  eps: 1e-5,
  momentum: 0.1,
  affine: true,
  track_running_stats: true,
} as const;

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

/** The wide network as a checkpoint named "wide" (classification, labels "0".."9"). */
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
