/**
 * What a training config may leave to the data (resolveTrainingConfig): the name from the file,
 * the task (classification, unless the labels look like a numeric target), the description, the
 * default network (architecture.ts) and, for regression, target scaling folded into the last
 * Linear (target-scaling.ts).
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, layerDefinitions } from '../../src/checkpoint/index.js';
import { Rng, Tensor } from '../../src/nn/index.js';
import {
  datasetFromTable,
  fitTargetScale,
  layersFromArchitecture,
  MAX_GUESSED_CLASSES,
  modelNameFromPath,
  parseCsv,
  parseTrainingConfig,
  resolveTrainingConfig,
  trainingConfigSchema,
} from '../../src/training/index.js';
import { applyTargetScale, checkTargetScalable } from '../../src/training/target-scaling.js';
import { expectRelClose } from '../helpers/compare.js';

function dataset(
  labels: readonly string[],
  task: 'classification' | 'regression' = 'classification',
) {
  const text = ['x1,x2,y', ...labels.map((l, i) => `${i},${i * 2},${l}`)].join('\n');
  return datasetFromTable(parseCsv(text, 'my data.csv'), 'y', task);
}

const config = (extra: Record<string, unknown> = {}) =>
  parseTrainingConfig({ data: { path: 'dir/my data.csv', label_column: 'y' }, ...extra }, 'test');

describe('modelNameFromPath', () => {
  it.each([
    ['data/penguins/penguins.csv', 'penguins'],
    ['C:\\data\\wine.csv', 'wine'],
    ['my data (2024).v2.csv', 'my-data-2024-.v2'],
    ['../evil.csv', 'evil'],
    ['.hidden.csv', 'hidden'],
    ['___.csv', 'model'],
    ['noext', 'noext'],
  ])('%s → %s', (path, name) => {
    expect(modelNameFromPath(path)).toBe(name);
  });
});

describe('resolveTrainingConfig', () => {
  it('fills name, task, description and the default network from the data', () => {
    const resolved = resolveTrainingConfig(config(), dataset(['a', 'b', 'c', 'a']));
    expect(resolved).toMatchObject({
      name: 'my-data',
      task: 'classification',
      description: 'Trained on my data.csv (4 rows): "y" from 2 features, 3 classes',
    });
    expect(resolved.layers).toEqual(
      layersFromArchitecture(
        trainingConfigSchema.parse({ data: { path: 'x' }, architecture: {} }).architecture!,
        2,
        3,
      ),
    );
    expect('architecture' in resolved).toBe(false);
    // Idempotent: what --print-config prints parses back to itself.
    expect(
      resolveTrainingConfig(parseTrainingConfig(resolved, 'again'), dataset(['a', 'b', 'c', 'a'])),
    ).toEqual(resolved);
  });

  it('given values win; regression gets target scaling "standard"', () => {
    const resolved = resolveTrainingConfig(
      config({ name: 'mine', description: 'd', task: 'regression', architecture: { hidden: [] } }),
      dataset(['1.5', '2', '3', '4'], 'regression'),
    );
    expect(resolved).toMatchObject({ name: 'mine', description: 'd', task: 'regression' });
    expect(resolved.data.target_scaling).toBe('standard');
    expect(resolved.layers).toEqual([
      { type: 'linear', in_features: 2, out_features: 1, bias: true },
    ]);
  });

  it('refuses numeric labels that look like a continuous target unless the task is given', () => {
    const fractional = dataset(['0.5', '1', '1', '0.5']);
    expect(() => resolveTrainingConfig(config(), fractional)).toThrow(
      /label column "y" holds 2 distinct numbers \(e\.g\. 0\.5\), which looks like a numeric target: for regression set the task to "regression" \(--task regression\)/,
    );
    const many = dataset(Array.from({ length: MAX_GUESSED_CLASSES + 1 }, (_, i) => String(i)));
    expect(() => resolveTrainingConfig(config(), many)).toThrow(/21 distinct numbers/);
    // Given explicitly, classification with many integer classes is the user's choice.
    expect(
      resolveTrainingConfig(config({ task: 'classification' }), many).layers.at(-1),
    ).toMatchObject({
      out_features: 21,
    });
    // Integer labels up to the limit are classes (digits has 10).
    expect(resolveTrainingConfig(config(), dataset(['0', '1', '2', '10'])).task).toBe(
      'classification',
    );
  });

  it('needs two classes, and target_scaling only for regression', () => {
    expect(() => resolveTrainingConfig(config(), dataset(['x', 'x']))).toThrow(
      'label column "y" has a single value ("x"); classification needs at least 2 classes',
    );
    expect(() =>
      resolveTrainingConfig(
        config({ data: { path: 'p', target_scaling: 'none' } }),
        dataset(['a', 'b']),
      ),
    ).toThrow('data.target_scaling applies to regression only');
  });

  it('the schema refuses layers and architecture together, and 0 epochs', () => {
    expect(() =>
      config({ layers: [{ type: 'linear', in_features: 2, out_features: 2 }], architecture: {} }),
    ).toThrow('architecture: give either layers or architecture, not both');
    expect(() => config({ training: { epochs: 0 } })).toThrow(
      'test: training.epochs: at least 1 (0 epochs would publish the random initial weights as a model)',
    );
  });
});

describe('layersFromArchitecture', () => {
  it('Linear → norm → ReLU → Dropout blocks with PyTorch defaults, then the outputs', () => {
    expect(
      layersFromArchitecture({ hidden: [8, 4], norm: 'batchnorm', dropout: 0.1 }, 3, 2),
    ).toEqual([
      { type: 'linear', in_features: 3, out_features: 8, bias: true },
      {
        type: 'batchnorm1d',
        num_features: 8,
        eps: 1e-5,
        momentum: 0.1,
        affine: true,
        track_running_stats: true,
      },
      { type: 'relu' },
      { type: 'dropout', p: 0.1 },
      { type: 'linear', in_features: 8, out_features: 4, bias: true },
      {
        type: 'batchnorm1d',
        num_features: 4,
        eps: 1e-5,
        momentum: 0.1,
        affine: true,
        track_running_stats: true,
      },
      { type: 'relu' },
      { type: 'dropout', p: 0.1 },
      { type: 'linear', in_features: 4, out_features: 2, bias: true },
    ]);
    expect(layersFromArchitecture({ hidden: [5], norm: 'none', dropout: 0 }, 3, 1)).toEqual([
      { type: 'linear', in_features: 3, out_features: 5, bias: true },
      { type: 'relu' },
      { type: 'linear', in_features: 5, out_features: 1, bias: true },
    ]);
  });
});

describe('target scaling', () => {
  it('fits mean and population std in float64; a constant target gets std 1', () => {
    expect(fitTargetScale(Float32Array.from([1, 2, 3, 4]))).toEqual({
      mean: 2.5,
      std: Math.sqrt(1.25),
    });
    expect(fitTargetScale(Float32Array.from([7, 7]))).toEqual({ mean: 7, std: 1 });
  });

  it('fold makes the network answer y = std·z + mean; unfold undoes it', () => {
    const layers = layersFromArchitecture({ hidden: [6], norm: 'none', dropout: 0 }, 3, 1);
    const network = buildSequential(layers, { init: new Rng(3) }).eval();
    const x = new Tensor(Float32Array.from([0.5, -1, 2, 1, 0, -0.25]), [2, 3]);
    const z = Array.from(network.forward(x).data);
    const scale = { mean: 4200, std: 800 };
    applyTargetScale(network, scale, 'fold');
    const y = Array.from(network.forward(x).data);
    // float32 weights: relative error of a few ulps of the folded values.
    expectRelClose(
      y,
      z.map((v) => v * scale.std + scale.mean),
      1e-6,
      'folded',
    );
    applyTargetScale(network, scale, 'unfold');
    expectRelClose(Array.from(network.forward(x).data), z, 1e-5, 'unfolded');
  });

  it('needs a last Linear with a bias', () => {
    expect(() =>
      checkTargetScalable([{ type: 'linear', in_features: 2, out_features: 1, bias: false }]),
    ).toThrow('layers[0] is a linear layer without bias: set data.target_scaling to "none"');
    expect(() =>
      checkTargetScalable([
        { type: 'linear', in_features: 2, out_features: 1, bias: true },
        { type: 'sigmoid' },
      ]),
    ).toThrow('layers[1] is "sigmoid"');
  });

  it("asks the layer's record which layers absorb the scale (a layer is defined once)", () => {
    const absorbing = layerDefinitions.filter((d) => d.targetScale !== undefined);
    expect(absorbing.map((d) => d.type)).toEqual(['linear']);
    const linear = absorbing[0]!;
    const spec = { type: 'linear', in_features: 2, out_features: 1 } as const;
    expect(linear.targetScale!({ ...spec, bias: true })).toBe('absorbs');
    expect(linear.targetScale!({ ...spec, bias: false })).toBe('no-bias');
  });
});
