/**
 * config.json of a normserve.model/v1 checkpoint: what parseModelConfig accepts, the defaults it
 * fills in (PyTorch's constructor defaults), and errors that name the place (code
 * MODEL_CONFIG_INVALID).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  MAX_BLOCK_DEPTH,
  MAX_LAYERS,
  MAX_SAMPLE_VALUES,
  parseModelConfig,
} from '../../src/checkpoint/model-config.js';
import { parseTrainingConfig } from '../../src/training/index.js';

const readJson = (relative: string): unknown =>
  JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8'));

/** The example of the model format: two Linear → BatchNorm1d → ReLU → Dropout blocks. */
function example(): Record<string, unknown> & { layers: Record<string, unknown>[] } {
  return {
    format: 'normserve.model/v1',
    name: 'digits',
    task: 'classification',
    input_shape: [64],
    labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    layers: [
      { type: 'linear', in_features: 64, out_features: 128, bias: true },
      {
        type: 'batchnorm1d',
        num_features: 128,
        eps: 1e-5,
        momentum: 0.1,
        affine: true,
        track_running_stats: true,
      },
      { type: 'relu' },
      { type: 'dropout', p: 0.2 },
      { type: 'linear', in_features: 128, out_features: 64, bias: true },
      { type: 'batchnorm1d', num_features: 64 },
      { type: 'relu' },
      { type: 'dropout', p: 0.2 },
      { type: 'linear', in_features: 64, out_features: 10 },
    ],
  };
}

/** parseModelConfig's error for a value, which must be MODEL_CONFIG_INVALID. */
function rejection(value: unknown): string {
  try {
    parseModelConfig(value);
  } catch (e) {
    expect((e as { code?: string }).code).toBe('MODEL_CONFIG_INVALID');
    return (e as Error).message;
  }
  throw new Error('parseModelConfig accepted an invalid config');
}

describe('parseModelConfig accepts', () => {
  it('the example config and keeps its values', () => {
    const config = parseModelConfig(example());
    expect(config.name).toBe('digits');
    expect(config.input_shape).toEqual([64]);
    expect(config.layers.map((l) => l.type)).toEqual([
      'linear',
      'batchnorm1d',
      'relu',
      'dropout',
      'linear',
      'batchnorm1d',
      'relu',
      'dropout',
      'linear',
    ]);
    expect(config.labels).toHaveLength(10);
  });

  it('the bundled models/digits/1/config.json and the PyTorch-made digits-torch config', () => {
    for (const path of [
      '../../models/digits/1/config.json',
      '../fixtures/torch-model/digits-torch/1/config.json',
    ]) {
      const config = parseModelConfig(readJson(path), path);
      expect(config.format).toBe('normserve.model/v1');
      expect(config.input_transform?.shift).toHaveLength(64);
      expect(config.input_transform?.scale).toHaveLength(64);
    }
  });

  it('a regression model without labels, and every layer type', () => {
    const config = parseModelConfig({
      format: 'normserve.model/v1',
      name: 'all-layers_1.0',
      task: 'regression',
      input_shape: [3],
      input_transform: { shift: [0, 1, 2], scale: [1, 0.5, 0.25] },
      layers: [
        { type: 'linear', in_features: 3, out_features: 4, bias: false },
        { type: 'batchnorm1d', num_features: 4, momentum: null, affine: false },
        { type: 'layernorm', normalized_shape: 4, elementwise_affine: false },
        { type: 'layernorm', normalized_shape: [4] },
        { type: 'relu', inplace: true },
        { type: 'leaky_relu', negative_slope: 0.2 },
        { type: 'gelu', approximate: 'tanh' },
        { type: 'tanh' },
        { type: 'sigmoid' },
        { type: 'selu' },
        { type: 'dropout' },
        { type: 'alpha_dropout', p: 0.1 },
        { type: 'identity' },
        { type: 'linear', in_features: 4, out_features: 1 },
      ],
    });
    expect(config.labels).toBeUndefined();
    expect(config.layers).toHaveLength(14);
  });
});

describe('parseModelConfig applies defaults', () => {
  it("BatchNorm1d: eps 1e-5, momentum 0.1, affine, track_running_stats (PyTorch's defaults)", () => {
    const config = parseModelConfig(example());
    expect(config.layers[5]).toEqual({
      type: 'batchnorm1d',
      num_features: 64,
      eps: 1e-5,
      momentum: 0.1,
      affine: true,
      track_running_stats: true,
    });
  });

  it('momentum null stays null (cumulative average)', () => {
    const value = example();
    value.layers[1] = { type: 'batchnorm1d', num_features: 128, momentum: null };
    expect(parseModelConfig(value).layers[1]).toMatchObject({ momentum: null, eps: 1e-5 });
  });

  it('Linear bias true; Dropout p 0.5; LeakyReLU slope 0.01; GELU approximate none', () => {
    const value = example();
    value.layers[3] = { type: 'dropout' };
    value.layers[6] = { type: 'leaky_relu' };
    value.layers[7] = { type: 'gelu' };
    const layers = parseModelConfig(value).layers;
    expect(layers[8]).toMatchObject({ type: 'linear', bias: true });
    expect(layers[3]).toEqual({ type: 'dropout', p: 0.5 });
    expect(layers[6]).toEqual({ type: 'leaky_relu', negative_slope: 0.01 });
    expect(layers[7]).toEqual({ type: 'gelu', approximate: 'none' });
  });

  it('LayerNorm: normalized_shape as a number becomes [n]; eps 1e-5; elementwise_affine', () => {
    const value = example();
    value.layers[5] = { type: 'layernorm', normalized_shape: 64 };
    expect(parseModelConfig(value).layers[5]).toEqual({
      type: 'layernorm',
      normalized_shape: [64],
      eps: 1e-5,
      elementwise_affine: true,
    });
  });
});

describe('parseModelConfig rejects, naming the place', () => {
  it('an unknown layer type', () => {
    const value = example();
    value.layers[2] = { type: 'conv3d', in_channels: 1, out_channels: 8, kernel_size: 3 };
    const message = rejection(value);
    expect(message).toContain('layers[2].type');
    expect(message).toContain('config.json');
  });

  it('an unknown layer type of any length, quoted short on one line', () => {
    const value = example();
    value.layers[2] = { type: `swish\n${'x'.repeat(100_000)}` };
    const message = rejection(value);
    expect(message).toContain('layers[2].type: unknown layer type "swish\\nxxx');
    expect(message).toContain('…"; expected one of');
    expect(message).not.toContain('\n');
    expect(message.length).toBeLessThan(1000);
    value.layers[2] = { type: 7 };
    expect(rejection(value)).toContain('unknown layer type 7;');
    value.layers[2] = { in_features: 3 };
    expect(rejection(value)).toContain('layers[2].type: a layer without a "type"; expected one of');
    value.layers[2] = {};
    expect(rejection(value)).toContain('a layer without a "type";');
  });

  it('in_features that do not match the previous width', () => {
    const value = example();
    value.layers[4] = { type: 'linear', in_features: 100, out_features: 64 };
    const message = rejection(value);
    expect(message).toContain('layers[4]');
    expect(message).toContain('100');
    expect(message).toContain('128');
  });

  it('a first layer that does not take input_shape', () => {
    const value = example();
    value.input_shape = [63];
    const message = rejection(value);
    expect(message).toContain('layers[0]');
    expect(message).toContain('63');
    expect(message).toContain('64');
  });

  it('num_features that do not match the previous width', () => {
    const value = example();
    value.layers[5] = { type: 'batchnorm1d', num_features: 32 };
    const message = rejection(value);
    expect(message).toContain('layers[5]');
    expect(message).toContain('num_features');
    expect(message).toContain('32');
    expect(message).toContain('64');
  });

  it('a LayerNorm normalized_shape that does not match the previous width', () => {
    const value = example();
    value.layers[1] = { type: 'layernorm', normalized_shape: [64] };
    const message = rejection(value);
    expect(message).toContain('layers[1]');
    expect(message).toContain('128');
  });

  it('a label count different from the output width', () => {
    const value = example();
    value.labels = ['a', 'b', 'c'];
    const message = rejection(value);
    expect(message).toContain('labels');
    expect(message).toContain('3');
    expect(message).toContain('10');
  });

  it('a classification model without labels', () => {
    const value = example();
    delete value.labels;
    expect(rejection(value)).toContain('labels');
  });

  it('labels on a regression model', () => {
    const value = example();
    value.task = 'regression';
    expect(rejection(value)).toContain('labels');
  });

  it('an input_transform whose length differs from the input width', () => {
    const value = example();
    value.input_transform = {
      shift: new Array(64).fill(0),
      scale: new Array(63).fill(1),
    };
    const message = rejection(value);
    expect(message).toContain('input_transform');
    expect(message).toContain('64');
    expect(message).toContain('63');
  });

  it('a non-finite input_transform value', () => {
    const value = example();
    value.input_transform = { shift: new Array(64).fill(0), scale: new Array(64).fill(1) };
    (value.input_transform as { scale: unknown[] }).scale[7] = null;
    expect(rejection(value)).toContain('input_transform.scale[7]');
  });

  it('a wrong format string', () => {
    const value = example();
    value.format = 'normserve.model/v2';
    const message = rejection(value);
    expect(message).toContain('format');
    expect(message).toContain('normserve.model/v1');
  });

  it('track_running_stats false (eval would need batch statistics)', () => {
    const value = example();
    value.layers[5] = { type: 'batchnorm1d', num_features: 64, track_running_stats: false };
    const message = rejection(value);
    expect(message).toContain('layers[5].track_running_stats');
    expect(message).toContain('track_running_stats=true');
  });

  it('an unknown field in a layer (strict objects catch typos)', () => {
    const value = example();
    value.layers[1] = { type: 'batchnorm1d', num_features: 128, momentun: 0.2 };
    const message = rejection(value);
    expect(message).toContain('layers[1]');
    expect(message).toContain('momentun');
  });

  it('a momentum outside [0, 1] and a non-positive eps', () => {
    const value = example();
    value.layers[1] = { type: 'batchnorm1d', num_features: 128, momentum: 1.5 };
    expect(rejection(value)).toContain('layers[1].momentum');
    value.layers[1] = { type: 'batchnorm1d', num_features: 128, eps: 0 };
    expect(rejection(value)).toContain('layers[1].eps');
  });

  it('an empty layer list, a bad name and a non-object', () => {
    const value = example();
    value.layers = [];
    expect(rejection(value)).toContain('layers');
    const named = example();
    named.name = '../etc';
    expect(rejection(named)).toContain('name');
    expect(rejection('not a config')).toContain('config.json');
  });

  it('in the words of every other message: the field, what it takes, what it got', () => {
    const cases: [string, (v: ReturnType<typeof example>) => void, string][] = [
      [
        'format',
        (v) => {
          v.format = 'normserve.model/v2';
        },
        'format: expected "normserve.model/v1", got "normserve.model/v2"',
      ],
      [
        'task',
        (v) => {
          v.task = 'ranking';
        },
        'task: expected one of "classification", "regression", got "ranking"',
      ],
      [
        'labels',
        (v) => {
          v.labels = ['cat'];
        },
        'labels: expected at least 2 items, got 1',
      ],
      [
        'layers',
        (v) => {
          v.layers = [];
        },
        'layers: expected at least 1 item, got 0',
      ],
      [
        'name',
        (v) => {
          v.name = '../etc';
        },
        'name: expected a model name: letters, digits, ".", "_" and "-" (at most 128), starting with a letter or digit, got "../etc"',
      ],
      [
        'a field a layer does not have',
        (v) => {
          v.layers[3] = { type: 'dropout', p: 0.2, rate: 0.5 };
        },
        'layers[3]: unknown field "rate"',
      ],
      [
        'a momentum',
        (v) => {
          v.layers[1] = { type: 'batchnorm1d', num_features: 128, momentum: 1.5 };
        },
        'layers[1].momentum: expected a number from 0 to 1, got 1.5',
      ],
      [
        'in_features',
        (v) => {
          v.layers[0] = { type: 'linear', in_features: 'sixty-four', out_features: 128 };
        },
        'layers[0].in_features: expected an integer > 0, got "sixty-four"',
      ],
      [
        'dynamic_batching',
        (v) => {
          v.dynamic_batching = { max_batch_rows: 0 };
        },
        'dynamic_batching.max_batch_rows: expected an integer from 1 to 1000000, got 0',
      ],
    ];
    for (const [what, change, expected] of cases) {
      const value = example();
      change(value);
      expect(rejection(value), what).toBe(`config.json: ${expected}`);
    }
    expect(rejection('not a config')).toBe(
      'config.json: (root): expected an object, got "not a config"',
    );
  });

  it('names the source it was given', () => {
    const value = example();
    value.format = 'x';
    expect(() => parseModelConfig(value, 'models/digits/7/config.json')).toThrow(
      /^models\/digits\/7\/config\.json: format/,
    );
  });
});

describe('nested blocks: at most MAX_BLOCK_DEPTH deep', () => {
  /** A regression config whose one layer is `depth` residual blocks nested in one another. */
  const nested = (depth: number): unknown =>
    JSON.parse(
      `{"format":"normserve.model/v1","name":"deep","task":"regression","input_shape":[1],"layers":[${'{"type":"residual","layers":['.repeat(depth)}{"type":"relu"}${']}'.repeat(depth)}]}`,
    );
  /** The path of the relu under `blocks` blocks: layers[0].layers[0]…[0]. */
  const pathUnder = (blocks: number) => `layers[0]${'.layers[0]'.repeat(blocks)}`;

  it('64 levels load (the relu at depth 64)', () => {
    expect(MAX_BLOCK_DEPTH).toBe(64);
    const config = parseModelConfig(nested(MAX_BLOCK_DEPTH));
    expect(config.layers[0]!.type).toBe('residual');
  });

  it('65 levels: MODEL_CONFIG_INVALID naming the file and the first layer too deep', () => {
    expect(() => parseModelConfig(nested(65), 'deep/1/config.json')).toThrow(
      `deep/1/config.json: ${pathUnder(65)}: blocks nested more than 64 deep (the limit; real networks nest one or two)`,
    );
    expect(rejection(nested(65))).toMatch(/blocks nested more than 64 deep/);
  });

  it('3,000 levels (past where the passes would exhaust the stack): the same refusal, no stack overflow', () => {
    expect(rejection(nested(3000))).toBe(
      `config.json: ${pathUnder(65)}: blocks nested more than 64 deep (the limit; real networks nest one or two)`,
    );
  });

  it('a training config’s layers obey the same limit', () => {
    const layers = (nested(3000) as { layers: unknown[] }).layers;
    expect(() => parseTrainingConfig({ data: { path: 'x.csv' }, layers }, 'train.json')).toThrow(
      `train.json: ${pathUnder(65)}: blocks nested more than 64 deep`,
    );
  });
});

describe('layers: at most MAX_LAYERS in all, nested ones counted', () => {
  /** A regression config of `flat` relus, then (when `inBlock` > 0) a residual block of that many. */
  const relus = (flat: number, inBlock = 0): unknown => {
    const layers: unknown[] = Array.from({ length: flat }, () => ({ type: 'relu' }));
    if (inBlock > 0)
      layers.push({
        type: 'residual',
        layers: Array.from({ length: inBlock }, () => ({ type: 'relu' })),
      });
    return {
      format: 'normserve.model/v1',
      name: 'wide',
      task: 'regression',
      input_shape: [1],
      layers,
    };
  };

  it('10,000 layers parse, flat or with a block counted as one more', () => {
    expect(MAX_LAYERS).toBe(10_000);
    expect(parseModelConfig(relus(MAX_LAYERS)).layers).toHaveLength(MAX_LAYERS);
    const withBlock = parseModelConfig(relus(MAX_LAYERS / 2, MAX_LAYERS / 2 - 1));
    expect(withBlock.layers).toHaveLength(MAX_LAYERS / 2 + 1);
  });

  it('10,001 layers: MODEL_CONFIG_INVALID naming the file and the count', () => {
    expect(() => parseModelConfig(relus(MAX_LAYERS + 1), 'wide/1/config.json')).toThrow(
      'wide/1/config.json: layers: 10001 layers, nested ones counted; at most 10000 are allowed (ResNet-152 has about 500)',
    );
    // The same count split between the list and a block (the block itself is a layer).
    expect(rejection(relus(MAX_LAYERS / 2, MAX_LAYERS / 2))).toMatch(
      /^config\.json: layers: 10001 layers, nested ones counted; at most 10000 are allowed/,
    );
  });

  it('200,000 relus in one block: refused by the count, not a stack overflow; a training config too', () => {
    expect(rejection(relus(0, 200_000))).toMatch(/^config\.json: layers: 200001 layers, nested/);
    const layers = (relus(200_000) as { layers: unknown[] }).layers;
    expect(() => parseTrainingConfig({ data: { path: 'x.csv' }, layers }, 'train.json')).toThrow(
      'train.json: layers: 200000 layers, nested ones counted; at most 10000 are allowed',
    );
  });
});

describe('a sample holds at most MAX_SAMPLE_VALUES values, at the input and after every layer', () => {
  /** A regression config of this input shape and these layers (then flatten and a linear). */
  const config = (input_shape: number[], layers: unknown[]): unknown => ({
    format: 'normserve.model/v1',
    name: 'big',
    task: 'regression',
    input_shape,
    layers,
  });

  it('2^24 values: the input [1, 4096, 4096] and a 3×3 convolution keeping it parse', () => {
    expect(MAX_SAMPLE_VALUES).toBe(2 ** 24);
    const conv = { type: 'conv2d', in_channels: 1, out_channels: 1, kernel_size: 3, padding: 1 };
    const parsed = parseModelConfig(
      config(
        [1, 4096, 4096],
        [conv, { type: 'flatten' }, { type: 'linear', in_features: 2 ** 24, out_features: 1 }],
      ),
    );
    expect(parsed.layers).toHaveLength(3);
  });

  it('an input over it: MODEL_CONFIG_INVALID naming input_shape (a 3×3 convolution on [1, 16384, 16384] had the JS engine allocate ~19 GB)', () => {
    const conv = { type: 'conv2d', in_channels: 1, out_channels: 1, kernel_size: 3, padding: 1 };
    expect(() => parseModelConfig(config([1, 16384, 16384], [conv]), 'big/1/config.json')).toThrow(
      'big/1/config.json: input_shape [1, 16384, 16384]: 268435456 values per sample, more than the limit of 16777216',
    );
  });

  it('a convolution whose windows hold more than 2^28 values per sample: MODEL_CONFIG_INVALID naming the layer (a 31×31 kernel on [1, 4096, 4096] asked the JS engine for ~129 GB)', () => {
    const conv = { type: 'conv2d', in_channels: 1, out_channels: 1, kernel_size: 31, padding: 15 };
    expect(() => parseModelConfig(config([1, 4096, 4096], [conv]), 'big/1/config.json')).toThrow(
      'big/1/config.json: layers[0] (conv2d): its windows hold 16122904576 values per sample (in_channels × kernel × output positions), more than the limit of 268435456',
    );
  });

  it('a layer whose output is over it: MODEL_CONFIG_INVALID naming the layer', () => {
    const conv = { type: 'conv2d', in_channels: 1, out_channels: 2, kernel_size: 3, padding: 1 };
    expect(() => parseModelConfig(config([1, 4096, 4096], [conv]), 'big/1/config.json')).toThrow(
      'big/1/config.json: layers[0] (conv2d): its output [2, 4096, 4096] holds 33554432 values per sample, more than the limit of 16777216',
    );
  });
});
