/**
 * Training's WebAssembly memory, known before anything is allocated: the layer records' parameter
 * shapes and per-step arrays are the built modules', the estimate meets the memory a dense
 * network's run reaches, and a network beyond wasm32's 4 GiB is refused from its config, before
 * its tensors exist.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  buildLayer,
  buildSequential,
  type LayerSpec,
  type LayerType,
  layerDefinition,
  layerFootprint,
  layerSchema,
  layerTypes,
} from '../../src/checkpoint/index.js';
import { isNormserveError } from '../../src/errors/index.js';
import { numelOf, Rng, StepArray, Tensor } from '../../src/nn/index.js';
import { WasmKernels } from '../../src/nn/wasm/index.js';
import {
  loadCsvDataset,
  loadTrainingConfig,
  parseTrainingConfig,
  resolveTrainingConfig,
  type TrainingConfig,
  train,
} from '../../src/training/index.js';
import { wasmTrainingMemory } from '../../src/training/wasm-memory.js';

/** WebAssembly memory grows in pages of 64 KiB. */
const PAGE = 65536;

const IRIS = 'data/iris/iris.csv';

describe('layer records: parameter shapes without building', () => {
  const cases: { what: string; layers: () => Promise<[LayerSpec[], number[]]> }[] = [
    {
      what: 'digits-cnn (conv2d with and without bias, batchnorm2d, a residual block)',
      layers: async () => {
        const c = await loadTrainingConfig('configs/digits-cnn.json');
        return [c.layers!, c.input_shape!];
      },
    },
    {
      what: 'digits-layernorm',
      layers: async () => {
        const c = await loadTrainingConfig('configs/digits-layernorm.json');
        return [c.layers!, c.input_shape ?? [64]];
      },
    },
    {
      what: 'no affine parameters, no bias',
      layers: async () => {
        const c = parseTrainingConfig(
          {
            data: { path: IRIS },
            layers: [
              { type: 'linear', in_features: 4, out_features: 8, bias: false },
              { type: 'batchnorm1d', num_features: 8, affine: false },
              { type: 'layernorm', normalized_shape: 8, elementwise_affine: false },
              { type: 'linear', in_features: 8, out_features: 3 },
            ],
          },
          'test',
        );
        return [c.layers!, [4]];
      },
    },
  ];
  for (const c of cases) {
    it(c.what, async () => {
      const [layers, input] = await c.layers();
      const built = buildSequential(layers)
        .parameters()
        .map((p) => [...p.value.shape]);
      expect(layerFootprint(layers, input).parameterShapes.map((s) => [...s])).toEqual(built);
    });
  }
});

describe('layer records: per-step arrays without building', () => {
  // One layer of every type, with an input it takes (whose size differs from its output's where
  // the type allows, so an array counted as the wrong one's size is caught).
  const layers: Record<LayerType, [Record<string, unknown>, number[]]> = {
    linear: [{ in_features: 3, out_features: 5 }, [3]],
    batchnorm1d: [{ num_features: 3 }, [3]],
    batchnorm2d: [{ num_features: 2 }, [2, 3, 3]],
    layernorm: [{ normalized_shape: 3 }, [3]],
    conv2d: [{ in_channels: 2, out_channels: 3, kernel_size: 2 }, [2, 4, 4]],
    maxpool2d: [{ kernel_size: 2 }, [2, 4, 4]],
    avgpool2d: [{ kernel_size: 2 }, [2, 4, 4]],
    adaptive_avgpool2d: [{ output_size: 1 }, [2, 4, 4]],
    flatten: [{}, [2, 3, 3]],
    relu: [{}, [3]],
    leaky_relu: [{}, [3]],
    gelu: [{}, [3]],
    tanh: [{}, [3]],
    sigmoid: [{}, [3]],
    selu: [{}, [3]],
    dropout: [{}, [3]],
    alpha_dropout: [{}, [3]],
    identity: [{}, [3]],
    residual: [
      {
        layers: [
          { type: 'linear', in_features: 3, out_features: 3 },
          { type: 'batchnorm1d', num_features: 3 },
          { type: 'relu' },
          { type: 'dropout' },
        ],
      },
      [3],
    ],
  };

  it('covers every layer type', () => {
    expect(Object.keys(layers).sort()).toEqual([...layerTypes].sort());
  });

  const BATCH = 4;
  for (const [type, [fields, input]] of Object.entries(layers)) {
    it(`${type}: the arrays its module takes are those its record states`, () => {
      const spec = layerSchema.parse({ type, ...fields });
      const module = buildLayer(spec, { init: new Rng(1), dropout: new Rng(2) });
      module.train().reuseArrays(true);
      const take = vi.spyOn(StepArray.prototype, 'take');
      try {
        const x = new Float32Array(BATCH * numelOf(input)).map((_, i) => Math.sin(i + 1));
        const y = module.forward(new Tensor(x, [BATCH, ...input]));
        module.backward(new Tensor(new Float32Array(y.data.length).fill(1), y.shape));
        // Each array's size, once per array (reused arrays are taken once per step).
        const sizes = new Map<unknown, number>();
        take.mock.calls.forEach(([length, , reuse], i) => {
          if (reuse) sizes.set(take.mock.contexts[i], length);
        });
        const expected = layerFootprint([spec], input).layerShapes.flatMap((layer) => {
          const arrays = layerDefinition(layer).stepArrays ?? { outputs: 0, inputs: 0 };
          return [
            ...Array<number>(arrays.outputs).fill(BATCH * numelOf(layer.output)),
            ...Array<number>(arrays.inputs).fill(BATCH * numelOf(layer.input)),
          ];
        });
        const sort = (a: number[]) => a.sort((p, q) => p - q);
        expect(sort([...sizes.values()])).toEqual(sort(expected));
      } finally {
        take.mockRestore();
      }
    });
  }
});

describe('the WebAssembly memory of a training run', () => {
  const grow = WebAssembly.Memory.prototype.grow;
  afterEach(() => {
    WebAssembly.Memory.prototype.grow = grow;
  });

  const dense = [
    { hidden: [1024, 512], norm: 'batchnorm', optimizer: { type: 'adamw' } },
    { hidden: [768, 768, 768], norm: 'layernorm', optimizer: { type: 'sgd', momentum: 0.9 } },
    { hidden: [4096], norm: 'none', optimizer: { type: 'sgd' } },
  ] as const;
  for (const d of dense) {
    it(`reaches what the estimate says, to the page: hidden ${d.hidden}, ${d.norm}, ${d.optimizer.type}`, async () => {
      let peak = 0;
      WebAssembly.Memory.prototype.grow = function (this: WebAssembly.Memory, pages: number) {
        const before = grow.call(this, pages);
        peak = Math.max(peak, this.buffer.byteLength);
        return before;
      };
      const parsed = parseTrainingConfig(
        {
          data: { path: IRIS },
          architecture: { hidden: d.hidden, norm: d.norm },
          training: { epochs: 2, batch_size: 32, optimizer: d.optimizer },
        },
        'test',
      );
      const { data, sha256 } = await loadCsvDataset(
        IRIS,
        parsed.data.label_column,
        'classification',
      );
      const config = resolveTrainingConfig(parsed, data);
      let evaluationRows: number[] = [];
      await train({
        config,
        data,
        dataSha256: sha256,
        engine: 'wasm',
        onStart: ({ rows }) => {
          evaluationRows = [rows.validation, rows.test];
        },
      });
      const estimate = wasmTrainingMemory(config.layers, config.input_shape, {
        batchSize: 32,
        optimizer: config.training.optimizer,
        evaluationRows,
      });
      expect(peak).toBeGreaterThan(0);
      // The memory reaches the estimate's last byte, in whole pages.
      expect(Math.ceil(estimate.total / PAGE) * PAGE).toBe(peak);
    });
  }

  /** Trains `file`'s config for one epoch on wasm: the memory's peak size and the estimate. */
  async function oneEpoch(
    file: string,
    edit: (c: TrainingConfig) => TrainingConfig = (c) => c,
  ): Promise<{ peak: number; estimate: number }> {
    let peak = 0;
    WebAssembly.Memory.prototype.grow = function (this: WebAssembly.Memory, pages: number) {
      const before = grow.call(this, pages);
      peak = Math.max(peak, this.buffer.byteLength);
      return before;
    };
    const loaded = edit(await loadTrainingConfig(file));
    const parsed = { ...loaded, training: { ...loaded.training, epochs: 1 } };
    const { data, sha256 } = await loadCsvDataset(
      parsed.data.path,
      parsed.data.label_column,
      'classification',
    );
    const config = resolveTrainingConfig(parsed, data);
    let evaluationRows: number[] = [];
    await train({
      config,
      data,
      dataSha256: sha256,
      engine: 'wasm',
      onStart: ({ rows }) => {
        evaluationRows = [rows.validation, rows.test];
      },
    });
    const estimate = wasmTrainingMemory(config.layers, config.input_shape, {
      batchSize: config.training.batch_size,
      optimizer: config.training.optimizer,
      evaluationRows,
    });
    expect(peak).toBeGreaterThan(0);
    return { peak, estimate: estimate.total };
  }

  // Conv2d's windows, dY's rows, packed windows and float64 blocks, BatchNorm's copies and each
  // evaluation's chunk are counted (digits-cnn, one epoch, was 3.3 MiB estimated against 53.9 MiB
  // reached): the memory a run reaches, to the page — so at or above it, and not twice it.
  const runs: { what: string; file: string; edit?: (c: TrainingConfig) => TrainingConfig }[] = [
    { what: 'digits-cnn (its test set evaluated at the end)', file: 'configs/digits-cnn.json' },
    {
      what: 'digits-cnn with a validation set each epoch, batch size 16',
      file: 'configs/digits-cnn.json',
      edit: (c) => ({
        ...c,
        data: { ...c.data, validation_fraction: 0.2 },
        training: { ...c.training, batch_size: 16 },
      }),
    },
    { what: 'the digits MLP (BatchNorm1d, dropout)', file: 'configs/digits-mlp.json' },
  ];
  for (const r of runs) {
    it(`reaches what the estimate says, to the page: ${r.what}`, async () => {
      const { peak, estimate } = await oneEpoch(r.file, r.edit);
      expect(Math.ceil(estimate / PAGE) * PAGE).toBe(peak);
    });
  }

  it('beyond 4 GiB, refuses the network from its config before allocating its tensors', async () => {
    // 10¹⁰ weights: building them would fail in V8 first (MODEL_CONFIG_INVALID, "too large to
    // allocate"), so this message proves the check ran before the network was built.
    const parsed = parseTrainingConfig(
      { data: { path: IRIS }, architecture: { hidden: [100_000, 100_000] } },
      'test',
    );
    const { data, sha256 } = await loadCsvDataset(IRIS, parsed.data.label_column, 'classification');
    const error = await train({ config: parsed, data, dataSha256: sha256, engine: 'wasm' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isNormserveError(error) && error.code).toBe('TRAINING_CONFIG_INVALID');
    expect((error as Error).message).toMatch(
      /^this network needs about [\d.]+ GiB of WebAssembly memory to train, over wasm32's 4 GiB limit: 10,001,300,003 parameters \(weights and gradients [\d.]+ GiB, AdamW state [\d.]+ GiB, matrix-product workspace [\d.]+ GiB\) and activations for batch size 64 \([\d.]+ [MG]iB\); train narrower layers \(--hidden, or the config's architecture\.hidden or layers\) or a smaller batch size \(--batch-size\)$/,
    );
  });

  it('a batch size above the training rows is costed as the one batch of them all, as it runs', async () => {
    // review60: --batch-size 3000000 on iris (96 training rows) was refused as needing 23.8 GiB.
    const parsed = parseTrainingConfig(
      { data: { path: IRIS }, training: { batch_size: 3_000_000, epochs: 1 } },
      'test',
    );
    const { data, sha256 } = await loadCsvDataset(IRIS, parsed.data.label_column, 'classification');
    const out = await train({ config: parsed, data, dataSha256: sha256, engine: 'wasm' });
    expect(out.metrics.epochs).toHaveLength(1);
  });

  it('a block beyond 4 GiB is refused in one line before the memory grows', () => {
    const kernels = new WasmKernels();
    let error: unknown;
    try {
      kernels.allocate(2 ** 30); // 4 GiB of float32, plus the first block's offset
    } catch (e) {
      error = e;
    }
    expect(isNormserveError(error) && error.code).toBe('TRAINING_CONFIG_INVALID');
    expect((error as Error).message).toBe(
      "training needs more than the 4 GiB of WebAssembly memory (wasm32's limit): train a smaller network or with a smaller batch size",
    );
    // Still usable: the refused block took nothing.
    expect(kernels.allocate(16)).toHaveLength(16);
  });
});
