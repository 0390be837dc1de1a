/**
 * Loading a model version gives the event loop back while it works (nn/slices.ts): the weights'
 * decoding, checks and copies, the plan's compilation (BatchNorm folds, into the previous Linear's
 * rows and into the next one's columns) and the wasm executor's packing run in slices, so a
 * callback queued once the load's CPU-bound part has begun runs before the load ends — through
 * CompiledModel.building, loadModel and the server's registry — and the version loaded that way
 * answers bit for bit as the synchronous path (parseCheckpoint and new CompiledModel) does.
 * Order and outcome only, no clocks.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  buildSequential,
  type Checkpoint,
  CONFIG_FILE,
  type LayerSpec,
  loadingWeights,
  MODEL_FORMAT,
  modelConfigSchema,
  networkForWeights,
  parseCheckpoint,
  parseConfigFile,
  WEIGHTS_FILE,
  weightsExpectation,
} from '../../src/checkpoint/index.js';
import { safetensorsLayout } from '../../src/checkpoint/safetensors.js';
import { CompiledModel } from '../../src/inference/index.js';
import { finishYielding, Rng, Sequential, SLICE_VALUES } from '../../src/nn/index.js';
import { loadModel, ModelRegistry, publishCheckpoint } from '../../src/service/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

const WIDTH = 600; // 600 × 600 weights: more than one slice (SLICE_VALUES = 2^18) per matrix
const FEATURES = 32;
const bn = {
  type: 'batchnorm1d',
  num_features: WIDTH,
  eps: 1e-5,
  momentum: 0.1,
  affine: true,
  track_running_stats: true,
} as const;
/** BatchNorm after a Linear (folds into its rows) and after a ReLU (into the next one's columns). */
const LAYERS: LayerSpec[] = [
  { type: 'linear', in_features: FEATURES, out_features: WIDTH, bias: true },
  bn,
  { type: 'relu' },
  { type: 'linear', in_features: WIDTH, out_features: WIDTH, bias: true },
  { type: 'relu' },
  bn,
  { type: 'linear', in_features: WIDTH, out_features: 5, bias: true },
];

function checkpoint(): Checkpoint {
  const rng = new Rng(11);
  const network = buildSequential(LAYERS, { init: rng });
  for (const [name, value] of network.stateDict()) {
    if (typeof value === 'bigint') continue;
    const d = value.data;
    if (name.endsWith('running_mean')) for (let i = 0; i < d.length; i++) d[i] = rng.normal();
    if (name.endsWith('running_var')) for (let i = 0; i < d.length; i++) d[i] = 0.2 + rng.next();
    if (name.endsWith('.1.weight') || name.endsWith('.5.weight'))
      for (let i = 0; i < d.length; i++) d[i] = 0.5 + rng.next();
  }
  const config = modelConfigSchema.parse({
    format: MODEL_FORMAT,
    name: 'sliced',
    task: 'classification',
    input_shape: [FEATURES],
    labels: ['a', 'b', 'c', 'd', 'e'],
    input_transform: {
      shift: Array.from({ length: FEATURES }, (_, i) => i / 8),
      scale: Array.from({ length: FEATURES }, (_, i) => 0.25 + i / 64),
    },
    layers: LAYERS,
  });
  return { config, state: network.stateDict() };
}

const ROWS = 7;
const input = (() => {
  const rng = new Rng(5);
  return Float32Array.from({ length: ROWS * FEATURES }, () => rng.uniform(-3, 3));
})();

/** The outputs' bits, so that -0 and +0 or two NaNs are told apart. */
const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

const repository = makeTempDir('load-yields');
const published = await publishCheckpoint(repository, checkpoint());
const files = {
  config: readFileSync(join(published.path, CONFIG_FILE)),
  weights: readFileSync(join(published.path, WEIGHTS_FILE)),
};

/** The synchronous path: parsed whole, compiled whole. */
function reference(engine: 'wasm' | 'js'): Float32Array {
  const loaded = parseCheckpoint(files, 'reference');
  const model = new CompiledModel(
    loaded.network,
    loaded.config.input_transform,
    64,
    loaded.config.input_shape,
    { engine },
  );
  try {
    return model.forward(input, ROWS).slice();
  } finally {
    model.close();
  }
}

/**
 * Starts counting the event loop's turns (a chain of setImmediate) once `Sequential`'s
 * loadingStateDict is first called — the load's files are read by then, so every turn counted
 * is one the load gave back — and returns the count so far.
 */
function turnsOnceCopyingStarts(): () => number {
  let turns = 0;
  let counting = false;
  const original = Sequential.prototype.loadingStateDict;
  vi.spyOn(Sequential.prototype, 'loadingStateDict').mockImplementation(function (
    this: Sequential,
    ...args
  ) {
    if (!counting) {
      counting = true;
      const tick = () => {
        turns++;
        if (counting) setImmediate(tick);
      };
      setImmediate(tick);
    }
    return original.apply(this, args);
  });
  return () => {
    counting = false;
    return turns;
  };
}

afterEach(() => vi.restoreAllMocks());
afterAll(() => removeTempDirs());

describe('loading in slices', () => {
  it('decodes, checks and copies the weights a slice at a time, into the same network', async () => {
    const config = parseConfigFile(files.config, 'c');
    const layout = safetensorsLayout(
      files.weights,
      files.weights.length,
      'w',
      weightsExpectation(config, 'c'),
    );
    const network = networkForWeights(config, layout, 'w');
    let between = 0;
    await finishYielding(
      loadingWeights(network, layout, files.weights.subarray(layout.dataStart), 'w'),
      async () => {
        between++;
      },
    );
    // Each float tensor is decoded, checked and copied in ≥ 1 slice each, a 600 × 600 one in 2.
    const tensors = [...network.stateDict().values()].filter((v) => typeof v !== 'bigint');
    const slices = tensors.reduce((n, t) => n + Math.ceil(t.numel / SLICE_VALUES), 0);
    expect(slices).toBeGreaterThan(tensors.length);
    expect(between).toBeGreaterThanOrEqual(3 * slices);
    const expected = parseCheckpoint(files, 'reference').network.stateDict();
    for (const [name, value] of network.stateDict()) {
      const want = expected.get(name)!;
      if (typeof value === 'bigint') expect(value).toBe(want);
      else if (typeof want !== 'bigint') expect(bits(value.data)).toEqual(bits(want.data));
    }
  });

  it.each(['wasm', 'js'] as const)(
    'CompiledModel.building (%s) lets a queued callback run first and answers as the synchronous path',
    async (engine) => {
      const loaded = parseCheckpoint(files, 'sliced');
      const order: string[] = [];
      const building = finishYielding(
        CompiledModel.building(
          loaded.network,
          loaded.config.input_transform,
          64,
          loaded.config.input_shape,
          { engine },
        ),
      ).then((model) => {
        order.push('built');
        return model;
      });
      setImmediate(() => order.push('immediate'));
      const model = await building;
      try {
        expect(order).toEqual(['immediate', 'built']);
        expect(model.plan.layers.map((l) => l.fate)).toEqual([
          'kernel',
          'folded_into_previous_linear',
          'fused_activation',
          'kernel',
          'fused_activation',
          'folded_into_next_linear',
          'kernel',
        ]);
        expect(model.plan.inputTransformFolded).toBe(true);
        expect(bits(model.forward(input, ROWS))).toEqual(bits(reference(engine)));
      } finally {
        model.close();
      }
    },
  );

  it('loadModel gives the event loop back after the files are read and answers as the synchronous path', async () => {
    const turns = turnsOnceCopyingStarts();
    const model = await loadModel(join(repository, 'sliced'));
    const counted = turns();
    try {
      // Copying the weights (≥ 1 turn per tensor), compiling and packing: many turns, not none.
      expect(counted).toBeGreaterThanOrEqual(10);
      expect(bits(model.run(input, ROWS))).toEqual(bits(reference('wasm')));
    } finally {
      model.close();
    }
  });

  it("the registry's load of a version (the repository poll's) gives the event loop back too", async () => {
    const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
    const turns = turnsOnceCopyingStarts();
    try {
      await registry.refresh();
      expect(turns()).toBeGreaterThanOrEqual(10);
      const served = registry.resolve('sliced');
      expect(served.version).toBe(published.version);
      expect(bits(served.compiled.forward(input, ROWS))).toEqual(bits(reference('wasm')));
    } finally {
      registry.close();
    }
  });
});
