/**
 * config.json of convolutional models: input_shape [C, H, W], the conv/pooling/flatten/residual
 * layer entries with PyTorch's defaults, and shape errors that name the (nested) place.
 */
import { describe, expect, it } from 'vitest';
import {
  buildSequential,
  holdsBatchNormStatistics,
  layerDefinitions,
  parseModelConfig,
} from '../../src/checkpoint/index.js';
import { compileRules } from '../../src/inference/index.js';
import { namedModules } from '../../src/nn/index.js';

type Layer = Record<string, unknown>;

/** The CNN on 8×8 digits. */
function cnn(): Record<string, unknown> & { layers: Layer[] } {
  return {
    format: 'normserve.model/v1',
    name: 'digits-cnn',
    task: 'classification',
    input_shape: [1, 8, 8],
    labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    layers: [
      { type: 'conv2d', in_channels: 1, out_channels: 16, kernel_size: 3, padding: 1 },
      { type: 'batchnorm2d', num_features: 16 },
      { type: 'relu' },
      {
        type: 'residual',
        layers: [
          {
            type: 'conv2d',
            in_channels: 16,
            out_channels: 16,
            kernel_size: 3,
            padding: 1,
            bias: false,
          },
          { type: 'batchnorm2d', num_features: 16 },
          { type: 'relu' },
          {
            type: 'conv2d',
            in_channels: 16,
            out_channels: 16,
            kernel_size: 3,
            padding: 1,
            bias: false,
          },
          { type: 'batchnorm2d', num_features: 16 },
        ],
      },
      { type: 'maxpool2d', kernel_size: 2 },
      { type: 'conv2d', in_channels: 16, out_channels: 32, kernel_size: 3, padding: 1 },
      { type: 'batchnorm2d', num_features: 32 },
      { type: 'relu' },
      { type: 'adaptive_avgpool2d', output_size: 1 },
      { type: 'flatten' },
      { type: 'linear', in_features: 32, out_features: 10 },
    ],
  };
}

function rejection(value: unknown): string {
  try {
    parseModelConfig(value);
  } catch (e) {
    expect((e as { code?: string }).code).toBe('MODEL_CONFIG_INVALID');
    return (e as Error).message;
  }
  throw new Error('parseModelConfig accepted an invalid config');
}

describe('a CNN config', () => {
  it("parses with PyTorch's defaults filled in, nested layers included", () => {
    const config = parseModelConfig(cnn());
    expect(config.input_shape).toEqual([1, 8, 8]);
    expect(config.layers[0]).toEqual({
      type: 'conv2d',
      in_channels: 1,
      out_channels: 16,
      kernel_size: 3,
      stride: 1,
      padding: 1,
      dilation: 1,
      groups: 1,
      bias: true,
      padding_mode: 'zeros',
    });
    expect(config.layers[4]).toEqual({
      type: 'maxpool2d',
      kernel_size: 2,
      padding: 0,
      ceil_mode: false,
      dilation: 1,
    });
    expect(config.layers[9]).toEqual({ type: 'flatten', start_dim: 1, end_dim: -1 });
    const block = config.layers[3] as { layers: Layer[] };
    expect(block.layers[1]).toEqual({
      type: 'batchnorm2d',
      num_features: 16,
      eps: 1e-5,
      momentum: 0.1,
      affine: true,
      track_running_stats: true,
    });
    expect(holdsBatchNormStatistics(config.layers)).toBe(true);
  });

  it("builds the state dict PyTorch's nn.Sequential has (9.9 k parameters)", () => {
    const network = buildSequential(parseModelConfig(cnn()).layers);
    const keys = [...network.stateDict().keys()];
    expect(keys.slice(0, 8)).toEqual([
      '0.weight',
      '0.bias',
      '1.weight',
      '1.bias',
      '1.running_mean',
      '1.running_var',
      '1.num_batches_tracked',
      '3.body.0.weight',
    ]);
    expect(keys).toContain('3.body.4.num_batches_tracked');
    expect(keys.at(-1)).toBe('10.bias');
    const parameters = network.parameters().reduce((n, p) => n + p.value.numel, 0);
    expect(parameters).toBe(9_898);
  });

  it('kernel and stride sizes may be [h, w]; stride null is the kernel size', () => {
    const value = cnn();
    value.layers[4] = { type: 'maxpool2d', kernel_size: [2, 2], stride: null };
    value.layers[0] = { ...value.layers[0], kernel_size: [3, 3], stride: [1, 1], padding: [1, 1] };
    expect(parseModelConfig(value).layers[4]).toMatchObject({ kernel_size: [2, 2], stride: null });
  });
});

describe('CNN shape errors name the place', () => {
  const cases: [string, (v: ReturnType<typeof cnn>) => void, RegExp][] = [
    [
      'a conv on a flat input',
      (v) => {
        v.input_shape = [64];
      },
      /layers\[0\] \(conv2d\): conv2d needs a \[C, H, W\] input, got \[64\] \(set input_shape to \[C, H, W\]\)/,
    ],
    [
      'in_channels that differ from the channels',
      (v) => {
        v.layers[5] = { ...v.layers[5], in_channels: 8 };
      },
      /layers\[5\] \(conv2d\): in_channels 8 does not match the 16 channels of \[16, 4, 4\]/,
    ],
    [
      'a nested layer that does not fit',
      (v) => {
        (v.layers[3]!.layers as Layer[])[1] = { type: 'batchnorm2d', num_features: 8 };
      },
      /layers\[3\]\.layers\[1\] \(batchnorm2d\): num_features 8 does not match the 16 channels/,
    ],
    [
      'a residual body that changes the shape',
      (v) => {
        (v.layers[3]!.layers as Layer[])[3] = {
          type: 'conv2d',
          in_channels: 16,
          out_channels: 16,
          kernel_size: 3,
        };
        (v.layers[3]!.layers as Layer[]).pop();
      },
      /layers\[3\] \(residual\): the body maps \[16, 8, 8\] to \[16, 6, 6\]; the identity skip needs the same shape/,
    ],
    [
      'a linear without flatten',
      (v) => {
        v.layers.splice(9, 1);
      },
      /layers\[9\] \(linear\): linear needs a flat input \[features\], got \[32, 1, 1\]; add a flatten layer before it/,
    ],
    [
      'a kernel larger than the padded input',
      (v) => {
        v.layers[4] = { type: 'maxpool2d', kernel_size: 9 };
      },
      /layers\[4\] \(maxpool2d\): kernel_size 9 is larger than the padded input \[16, 8, 8\]/,
    ],
    [
      'pooling padding over half the kernel',
      (v) => {
        v.layers[4] = { type: 'maxpool2d', kernel_size: 2, padding: 2 };
      },
      /layers\[4\] \(maxpool2d\): padding 2 must be at most half of kernel_size 2/,
    ],
    [
      'a network that does not end flat',
      (v) => {
        v.layers.splice(9, 2);
        v.labels = ['a', 'b'];
      },
      /output has shape \[32, 1, 1\]; a flat \[outputs\] is needed/,
    ],
    [
      'an unknown nested type',
      (v) => {
        (v.layers[3]!.layers as Layer[])[2] = { type: 'swish' };
      },
      /layers\[3\]\.layers\[2\]\.type: unknown layer type "swish"/,
    ],
    [
      'groups other than 1',
      (v) => {
        v.layers[0] = { ...v.layers[0], groups: 2 };
      },
      /layers\[0\]\.groups: only groups=1 is supported/,
    ],
    [
      'flatten of the batch dimension',
      (v) => {
        v.layers[9] = { type: 'flatten', start_dim: 0 };
      },
      /layers\[9\]\.start_dim: start_dim must be ≥ 1/,
    ],
    [
      'an input_shape of rank 2',
      (v) => {
        v.input_shape = [8, 8];
      },
      /input_shape: expected \[features\] or \[channels, height, width\]/,
    ],
    [
      'an input transform of the wrong size',
      (v) => {
        v.input_transform = { shift: [0], scale: [1] };
      },
      /input_transform needs 64 shift and scale values, got 1 and 1/,
    ],
  ];
  for (const [what, change, expected] of cases) {
    it(what, () => {
      const value = cnn();
      change(value);
      expect(rejection(value)).toMatch(expected);
    });
  }
});

describe('the registry', () => {
  it('every layer type builds a module that has a compile rule', () => {
    const minimal: Record<string, Layer> = {
      linear: { type: 'linear', in_features: 2, out_features: 2 },
      batchnorm1d: { type: 'batchnorm1d', num_features: 2 },
      batchnorm2d: { type: 'batchnorm2d', num_features: 2 },
      layernorm: { type: 'layernorm', normalized_shape: 2 },
      conv2d: { type: 'conv2d', in_channels: 2, out_channels: 2, kernel_size: 1 },
      maxpool2d: { type: 'maxpool2d', kernel_size: 1 },
      avgpool2d: { type: 'avgpool2d', kernel_size: 1 },
      adaptive_avgpool2d: { type: 'adaptive_avgpool2d', output_size: 1 },
      flatten: { type: 'flatten' },
      residual: { type: 'residual', layers: [{ type: 'identity' }] },
    };
    for (const d of layerDefinitions) {
      const spec = d.schema.parse(minimal[d.type] ?? { type: d.type });
      const network = buildSequential([spec as never]);
      for (const [path, m] of namedModules(network).slice(1)) {
        if (m.kind === 'Sequential') continue;
        expect(compileRules[m.kind], `${d.type}: ${path} (${m.kind})`).toBeDefined();
      }
    }
  });
});
