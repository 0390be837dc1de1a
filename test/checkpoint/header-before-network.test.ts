/**
 * A weights file's header is checked against the state_dict the config declares before the
 * network is built (review 9: a 250,000,000-feature batchnorm1d next to a 68-byte file froze the
 * server 7.8 s and kept 2.2 GB). buildSequential is spied on through its module, so "not built"
 * is observed, not timed.
 */
import { describe, expect, it, vi } from 'vitest';

const built = vi.hoisted(() => ({ count: 0 }));
vi.mock('../../src/checkpoint/build-model.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/checkpoint/build-model.js')>();
  return {
    ...actual,
    buildSequential: (...args: Parameters<typeof actual.buildSequential>) => {
      built.count += 1;
      return actual.buildSequential(...args);
    },
  };
});

const {
  buildSequential,
  EXTRA_TENSORS_PARSED,
  layerSchema,
  layerTypes,
  parseCheckpoint,
  serializeCheckpoint,
  stateSignatures,
} = await import('../../src/checkpoint/index.js');
const { writeSafetensors } = await import('../../src/checkpoint/safetensors.js');
const { signatureOf } = await import('../../src/nn/module.js');

const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

const config = (features: number) => ({
  format: 'normserve.model/v1',
  name: 'evil',
  task: 'regression',
  input_shape: [features],
  layers: [{ type: 'batchnorm1d', num_features: features }],
});

describe('the weights header is checked before the network is built', () => {
  it('refuses a 16,000,000-feature batchnorm1d next to a tiny file without building it', () => {
    // What the attacker's 68-byte file held: one small tensor, none of the config's.
    const weights = writeSafetensors([
      ['0.weight', { dtype: 'F32', shape: [1], bytes: new Uint8Array(4) }],
    ]);
    built.count = 0;
    expect(() =>
      parseCheckpoint({ config: encode(config(16_000_000)), weights }, 'models/evil/1'),
    ).toThrow(
      expect.objectContaining({
        code: 'CHECKPOINT_MISMATCH',
        message:
          'models/evil/1/model.safetensors: tensor "0.weight" has shape [1], expected [16000000]',
      }),
    );
    expect(built.count).toBe(0);
  });

  it('refuses a header missing a tensor without building, and builds once when it matches', () => {
    const layers = config(3).layers.map((l) => layerSchema.parse(l));
    const state = buildSequential(layers).stateDict();
    const files = serializeCheckpoint({ config: layerConfig(), state });
    const weights = files.get('model.safetensors')!;
    built.count = 0;
    const partial = new Map([...state].filter(([name]) => name !== '0.running_var'));
    const cut = serializeCheckpoint({ config: layerConfig(), state: partial });
    expect(() =>
      parseCheckpoint(
        { config: files.get('config.json')!, weights: cut.get('model.safetensors')! },
        'm/1',
      ),
    ).toThrow('m/1/model.safetensors: missing tensor "0.running_var"');
    expect(built.count).toBe(0);
    const loaded = parseCheckpoint({ config: files.get('config.json')!, weights }, 'm/1');
    expect(built.count).toBe(1);
    expect([...loaded.state.keys()]).toEqual([...state.keys()]);
  });
});

describe('a header without num_batches_tracked', () => {
  it('loads with the count at 0 and the same values, as load_state_dict(strict=True) does', () => {
    // PyTorch's _NormBase._load_from_state_dict fills in a missing num_batches_tracked for a
    // state_dict without version metadata, which is what a safetensors file holds: converters
    // that drop the buffer make files PyTorch opens.
    const layers = config(3).layers.map((l) => layerSchema.parse(l));
    const network = buildSequential(layers);
    const state = network.stateDict();
    (state.get('0.running_var') as { data: Float32Array }).data.set([0.5, 2, 3]);
    const files = serializeCheckpoint({ config: layerConfig(), state });
    const partial = new Map([...state].filter(([name]) => name !== '0.num_batches_tracked'));
    const cut = serializeCheckpoint({ config: layerConfig(), state: partial });
    const loaded = parseCheckpoint(
      { config: files.get('config.json')!, weights: cut.get('model.safetensors')! },
      'm/1',
    );
    expect(loaded.state.get('0.num_batches_tracked')).toBe(0n);
    expect(Array.from((loaded.state.get('0.running_var') as { data: Float32Array }).data)).toEqual([
      0.5, 2, 3,
    ]);
    expect([...loaded.state.keys()]).toEqual([...state.keys()]);
  });
});

describe('a header naming more tensors than the config declares', () => {
  it('is refused by name up to EXTRA_TENSORS_PARSED more', () => {
    expect(EXTRA_TENSORS_PARSED).toBe(1024);
    const state = buildSequential(config(3).layers.map((l) => layerSchema.parse(l))).stateDict();
    const extra = Array.from(
      { length: EXTRA_TENSORS_PARSED },
      (_, i): [string, ReturnType<typeof state.get>] => [`x${i}`, state.get('0.weight')],
    );
    const files = serializeCheckpoint({
      config: layerConfig(),
      state: new Map([...state, ...extra]) as typeof state,
    });
    expect(() =>
      parseCheckpoint(
        { config: files.get('config.json')!, weights: files.get('model.safetensors')! },
        'm/1',
      ),
    ).toThrow('m/1/model.safetensors: unexpected tensor "x0"');
  });

  it('is refused from a count on its text past that, before JSON.parse builds its keys', () => {
    // 3 features: weight, bias, running_mean, running_var, num_batches_tracked (5 tensors).
    const keys = Array.from({ length: 100_000 }, (_, i) => `"k${i}":""`).join(',');
    const header = new TextEncoder().encode(`{"__metadata__":{"format":"pt"},${keys}}`);
    const weights = new Uint8Array(8 + header.length);
    new DataView(weights.buffer).setBigUint64(0, BigInt(header.length), true);
    weights.set(header, 8);
    const configBytes = encode(config(3));
    const parse = vi.spyOn(JSON, 'parse');
    built.count = 0;
    try {
      expect(() => parseCheckpoint({ config: configBytes, weights }, 'm/1')).toThrow(
        expect.objectContaining({
          code: 'CHECKPOINT_MISMATCH',
          message:
            'm/1/model.safetensors: the header names more than 1029 tensors (m/1/config.json declares 5)',
        }),
      );
      // JSON.parse read config.json only (its one call), never the weights' header.
      expect(parse.mock.calls.every(([text]) => !String(text).includes('"k0"'))).toBe(true);
      expect(built.count).toBe(0);
    } finally {
      parse.mockRestore();
    }
  });
});

function layerConfig() {
  const c = config(3);
  return { ...c, layers: c.layers.map((l) => layerSchema.parse(l)) } as never;
}

describe('stateSignatures: the state_dict a config declares, without building it', () => {
  const cases: [string, unknown[]][] = [
    [
      'dense, every option',
      [
        { type: 'linear', in_features: 4, out_features: 8 },
        { type: 'batchnorm1d', num_features: 8 },
        { type: 'linear', in_features: 8, out_features: 8, bias: false },
        { type: 'batchnorm1d', num_features: 8, affine: false },
        { type: 'layernorm', normalized_shape: 8 },
        { type: 'layernorm', normalized_shape: 8, elementwise_affine: false },
        { type: 'dropout', p: 0.5 },
        { type: 'relu' },
      ],
    ],
    [
      'convolutional with nested residual blocks',
      [
        { type: 'conv2d', in_channels: 3, out_channels: 4, kernel_size: [3, 2], padding: 1 },
        { type: 'batchnorm2d', num_features: 4 },
        {
          type: 'residual',
          layers: [
            { type: 'conv2d', in_channels: 4, out_channels: 4, kernel_size: 1, bias: false },
            { type: 'batchnorm2d', num_features: 4, affine: false },
            {
              type: 'residual',
              layers: [{ type: 'layernorm', normalized_shape: [4, 5, 5] }, { type: 'relu' }],
            },
          ],
        },
        { type: 'maxpool2d', kernel_size: 2 },
        { type: 'avgpool2d', kernel_size: 1 },
        { type: 'adaptive_avgpool2d', output_size: 2 },
        { type: 'flatten' },
        { type: 'linear', in_features: 16, out_features: 2 },
        { type: 'leaky_relu' },
        { type: 'gelu' },
        { type: 'tanh' },
        { type: 'sigmoid' },
        { type: 'selu' },
        { type: 'alpha_dropout', p: 0.1 },
        { type: 'identity' },
      ],
    ],
  ];
  it('covers every layer type, so a new one with state but no declared `state` fails above', () => {
    const types = new Set<string>();
    const walk = (layers: unknown[]) => {
      for (const l of layers as { type: string; layers?: unknown[] }[]) {
        types.add(l.type);
        if (l.layers) walk(l.layers);
      }
    };
    for (const [, raw] of cases) walk(raw);
    expect([...types].sort()).toEqual([...layerTypes].sort());
  });
  for (const [what, raw] of cases) {
    it(`equals the built network's stateDict(): ${what}`, () => {
      const layers = raw.map((l) => layerSchema.parse(l));
      const expected = [...buildSequential(layers).stateDict()].map(([name, value]) => {
        const s = signatureOf(value);
        return [name, s.integer, [...s.shape]];
      });
      const declared = [...stateSignatures(layers)].map(([name, s]) => [
        name,
        s.integer,
        [...s.shape],
      ]);
      expect(declared).toEqual(expected);
      expect(declared.length).toBeGreaterThan(10);
    });
  }
});
