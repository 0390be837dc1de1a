/**
 * The training loop on real data (iris): bit-for-bit determinism, lr 0 keeping the weights while
 * BatchNorm's running statistics still move, early stopping restoring the best epoch, and the
 * checks train() makes before the first step.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { networkFromCheckpoint, stateDictToSafetensors } from '../../src/checkpoint/index.js';
import { applyFeatureTransform, Rng, type StateDict, Tensor } from '../../src/nn/index.js';
import {
  datasetFromTable,
  type LabeledDataset,
  loadCsvDataset,
  parseCsv,
  parseTrainingConfig,
  type TrainOutput,
  train,
} from '../../src/training/index.js';
import { expectRelClose } from '../helpers/compare.js';

const IRIS = fileURLToPath(new URL('../../data/iris/iris.csv', import.meta.url));

let iris: { data: LabeledDataset; sha256: string };
beforeAll(async () => {
  iris = await loadCsvDataset(IRIS, 'label', 'classification');
});

const BN_MLP = [
  { type: 'linear', in_features: 4, out_features: 16 },
  { type: 'batchnorm1d', num_features: 16 },
  { type: 'relu' },
  { type: 'dropout', p: 0.1 },
  { type: 'linear', in_features: 16, out_features: 3 },
];

interface Overrides {
  seed?: number;
  input_shape?: number[];
  layers?: unknown[];
  data?: Record<string, unknown>;
  training?: Record<string, unknown>;
}

function irisConfig(o: Overrides = {}) {
  return parseTrainingConfig(
    {
      name: 'iris-test',
      seed: o.seed ?? 7,
      ...(o.input_shape ? { input_shape: o.input_shape } : {}),
      data: { path: IRIS, test_split: { fraction: 0.2 }, validation_fraction: 0.1, ...o.data },
      layers: o.layers ?? BN_MLP,
      training: {
        epochs: 3,
        batch_size: 16,
        optimizer: { type: 'adamw', lr: 0.01 },
        lr_schedule: { type: 'cosine' },
        ...o.training,
      },
    },
    'iris-test.json',
  );
}

const run = (o: Overrides = {}): Promise<TrainOutput> =>
  train({ config: irisConfig(o), data: iris.data, dataSha256: iris.sha256, now: () => 0 });

const bytes = (state: StateDict): Buffer => Buffer.from(stateDictToSafetensors(state));
const values = (state: StateDict, key: string): number[] =>
  Array.from((state.get(key) as Tensor).data);

describe('train() is deterministic', () => {
  it('the same config, data and seed give byte-identical tensors, config and metrics', async () => {
    const a = await run();
    const b = await run();
    expect(bytes(a.state).equals(bytes(b.state))).toBe(true);
    expect(b.config).toEqual(a.config);
    expect(b.metrics).toEqual(a.metrics);
    expect(a.metrics.epochs).toHaveLength(3);
  });

  it('a different seed gives different weights', async () => {
    const a = await run();
    const c = await run({ seed: 8 });
    expect(bytes(a.state).equals(bytes(c.state))).toBe(false);
  });

  it('records what reproduces the run: seed, data sha256, recipe, input transform', async () => {
    const out = await run();
    expect(out.metrics.seed).toBe(7);
    expect(out.metrics.data_sha256).toBe(iris.sha256);
    expect(out.metrics.rows).toEqual({ train: 108, validation: 12, test: 30 });
    expect(out.config.format).toBe('normserve.model/v1');
    expect(out.config.labels).toEqual(['0', '1', '2']);
    expect(out.config.input_transform?.shift).toHaveLength(4);
    expect(out.config.training).toMatchObject({ seed: 7, data_sha256: iris.sha256, epochs_run: 3 });
  });
});

describe('learning rate 0', () => {
  for (const optimizer of [
    { type: 'adamw', lr: 0, weight_decay: 0.01 },
    { type: 'adam', lr: 0, weight_decay: 0.01 },
    { type: 'sgd', lr: 0, momentum: 0.9, weight_decay: 0.01 },
  ]) {
    it(`${optimizer.type}: weights stay at their initial values; BN running stats move`, async () => {
      // The initial weights: train() with no epoch. Configs refuse epochs 0 (it would publish an
      // untrained model), so the parsed config is changed after parsing.
      const untrained = irisConfig({ training: { optimizer } });
      untrained.training.epochs = 0;
      const initial = await train({
        config: untrained,
        data: iris.data,
        dataSha256: iris.sha256,
        now: () => 0,
      });
      const trained = await run({ training: { epochs: 2, optimizer } });
      expect(initial.metrics.epochs).toHaveLength(0);
      expect(trained.metrics.epochs).toHaveLength(2);
      for (const key of ['0.weight', '0.bias', '1.weight', '1.bias', '4.weight', '4.bias']) {
        expect(values(trained.state, key), key).toEqual(values(initial.state, key));
      }
      expect(values(trained.state, '1.running_mean')).not.toEqual(
        values(initial.state, '1.running_mean'),
      );
      expect(values(trained.state, '1.running_var')).not.toEqual(
        values(initial.state, '1.running_var'),
      );
      expect(initial.state.get('1.num_batches_tracked')).toBe(0n);
      // 108 training rows in batches of 16: 7 batches per epoch.
      expect(trained.state.get('1.num_batches_tracked')).toBe(14n);
    });
  }
});

describe('BatchNorm and the batch size', () => {
  it('drops a trailing batch of one row (it could not be normalized), and only that', async () => {
    // 120 training rows (no validation) in batches of 17: 7 full batches and 1 row left over.
    const out = await run({
      data: { validation_fraction: 0 },
      training: { epochs: 2, batch_size: 17 },
    });
    expect(out.metrics.rows.train).toBe(120);
    expect(out.state.get('1.num_batches_tracked')).toBe(14n);
    // 120 rows in batches of 16: 8 batches, the last one of 8 rows.
    const full = await run({ data: { validation_fraction: 0 }, training: { epochs: 2 } });
    expect(full.state.get('1.num_batches_tracked')).toBe(16n);
  });

  it('rejects batch_size 1 with BatchNorm1d before training, naming the layer and why', async () => {
    await expect(run({ training: { batch_size: 1 } })).rejects.toMatchObject({
      code: 'TRAINING_CONFIG_INVALID',
      message:
        'batch_size 1: layers[1] (batchnorm1d) would get input [1, 16] in a batch of 1 row: one value per channel, which a BatchNorm cannot normalize in training (PyTorch: "Expected more than 1 value per channel when training"); use a batch size of at least 2',
    });
  });

  // Iris's 4 features as [1, 2, 2] images: a BatchNorm2d on 2×2 maps gets 4 values per channel
  // from one row, which PyTorch trains (it refuses N·H·W = 1 only); on 1×1 maps, 1.
  const bn2d = (size: number) => ({
    input_shape: size === 2 ? [1, 2, 2] : [4, 1, 1],
    layers: [
      { type: 'conv2d', in_channels: size === 2 ? 1 : 4, out_channels: 4, kernel_size: 1 },
      { type: 'batchnorm2d', num_features: 4 },
      { type: 'relu' },
      { type: 'flatten' },
      { type: 'linear', in_features: 4 * size * size, out_features: 3 },
    ],
  });

  it('runs a trailing batch of one row through a BatchNorm2d on 2×2 maps, as DataLoader does', async () => {
    // 120 training rows in batches of 17: 7 full batches and the last of 1 row, per epoch.
    const out = await run({
      ...bn2d(2),
      data: { validation_fraction: 0 },
      training: { epochs: 2, batch_size: 17 },
    });
    expect(out.metrics.rows.train).toBe(120);
    expect(out.state.get('1.num_batches_tracked')).toBe(16n);
  });

  it('trains a BatchNorm2d on 2×2 maps with batch_size 1', async () => {
    const out = await run({ ...bn2d(2), training: { epochs: 1, batch_size: 1 } });
    expect(out.metrics.rows.train).toBe(108);
    expect(out.state.get('1.num_batches_tracked')).toBe(108n);
    expect(out.metrics.epochs[0]!.train_loss).toSatisfy(Number.isFinite);
  });

  it('treats a BatchNorm2d on 1×1 maps as BatchNorm1d: one row is one value per channel', async () => {
    const dropped = await run({
      ...bn2d(1),
      data: { validation_fraction: 0 },
      training: { epochs: 2, batch_size: 17 },
    });
    expect(dropped.state.get('1.num_batches_tracked')).toBe(14n);
    await expect(run({ ...bn2d(1), training: { batch_size: 1 } })).rejects.toMatchObject({
      code: 'TRAINING_CONFIG_INVALID',
      message: expect.stringContaining('layers[1] (batchnorm2d) would get input [1, 4, 1, 1]'),
    });
  });

  it('accepts batch_size 1 without BatchNorm', async () => {
    const layers = [{ type: 'linear', in_features: 4, out_features: 3 }];
    const out = await run({ layers, training: { epochs: 1, batch_size: 1 } });
    expect(out.metrics.epochs).toHaveLength(1);
  });
});

describe('train() checks the architecture against the data', () => {
  it('rejects layers that do not chain, naming the layer', async () => {
    const layers = structuredClone(BN_MLP);
    (layers[4] as { in_features: number }).in_features = 8;
    await expect(run({ layers })).rejects.toMatchObject({
      code: 'MODEL_CONFIG_INVALID',
      message: expect.stringMatching(/layers\[4\].*8.*16/),
    });
  });

  it('rejects a first layer that does not take the data width', async () => {
    const layers = structuredClone(BN_MLP);
    (layers[0] as { in_features: number }).in_features = 5;
    await expect(run({ layers })).rejects.toMatchObject({
      message: expect.stringMatching(/layers\[0\].*5.*4/),
    });
  });

  it('rejects an output width different from the number of classes', async () => {
    const layers = structuredClone(BN_MLP);
    (layers[4] as { out_features: number }).out_features = 4;
    await expect(run({ layers })).rejects.toMatchObject({
      code: 'TRAINING_CONFIG_INVALID',
      message: expect.stringContaining('3 classes'),
    });
  });
});

describe('early stopping', () => {
  // Constant lr, so a run of fewer epochs is a prefix of a longer one.
  const recipe = {
    epochs: 60,
    optimizer: { type: 'adamw', lr: 0.05 },
    lr_schedule: { type: 'constant' },
  };
  const data = { validation_fraction: 0.2 };

  it('stops after `patience` epochs without a better validation loss and keeps the best epoch', async () => {
    const patience = 2;
    const out = await run({ data, training: { ...recipe, patience } });
    const m = out.metrics;
    expect(m.stopped_early).toBe(true);
    const best = m.best_epoch!;
    expect(best).toBeGreaterThan(0);
    expect(m.epochs).toHaveLength(best + patience);
    expect(m.epochs.length).toBeLessThan(60);
    const losses = m.epochs.map((e) => e.val_loss!);
    expect(Math.min(...losses)).toBe(losses[best - 1]);
    for (const later of losses.slice(best)) expect(later).toBeGreaterThanOrEqual(losses[best - 1]!);
    expect(out.config.training).toMatchObject({
      best_epoch: best,
      weights_epoch: best,
      epochs_run: best + patience,
    });
    expect(m.weights_epoch).toBe(best);

    // The weights (and BN running statistics) are those at the end of the best epoch: the same
    // bytes as a run that stops there.
    const atBest = await run({ data, training: { ...recipe, epochs: best } });
    expect(bytes(out.state).equals(bytes(atBest.state))).toBe(true);
    expect(m.test).toEqual(atBest.metrics.test);
    // ... and not those of the last epoch run.
    const atLast = await run({ data, training: { ...recipe, epochs: best + patience } });
    expect(bytes(out.state).equals(bytes(atLast.state))).toBe(false);
    // Without patience the same epochs keep the last weights: best_epoch still names the epoch
    // that validated best, weights_epoch the one the checkpoint holds.
    expect(atLast.metrics.best_epoch).toBe(best);
    expect(atLast.metrics.weights_epoch).toBe(best + patience);
    expect(atLast.config.training).toMatchObject({
      best_epoch: best,
      weights_epoch: best + patience,
    });
  });

  it('patience without validation rows is refused, not ignored', async () => {
    expect(() =>
      irisConfig({ data: { validation_fraction: 0 }, training: { patience: 2 } }),
    ).toThrow(
      /^iris-test\.json: training\.patience: early stopping compares validation losses, and data\.validation_fraction is 0/,
    );
    // A fraction that rounds to no row of the 120 training rows.
    await expect(
      run({ data: { validation_fraction: 0.001 }, training: { patience: 2 } }),
    ).rejects.toMatchObject({
      code: 'TRAINING_CONFIG_INVALID',
      message:
        'training.patience 2: early stopping compares validation losses, and data.validation_fraction 0.001 of 120 rows gives no validation row: set a larger validation_fraction, or train without patience',
    });
  });

  it('without patience every epoch runs and the last weights are kept', async () => {
    const out = await run({ data, training: { ...recipe, epochs: 15 } });
    expect(out.metrics.stopped_early).toBe(false);
    expect(out.metrics.epochs).toHaveLength(15);
    const again = await run({ data, training: { ...recipe, epochs: 15 } });
    expect(bytes(out.state).equals(bytes(again.state))).toBe(true);
  });
});

describe('fine-tuning checks the data’s columns against the checkpoint’s', () => {
  it('refuses data whose feature columns are the checkpoint’s in another order', async () => {
    const first = await run({ training: { epochs: 1 } });
    // Iris with its first two feature columns swapped, read without the checkpoint's names.
    const lines = readFileSync(IRIS, 'utf8').trimEnd().split('\n');
    const swapped = lines
      .map((line) => {
        const [a, b, ...rest] = line.split(',');
        return [b, a, ...rest].join(',');
      })
      .join('\n');
    const data = datasetFromTable(parseCsv(swapped, 'swapped.csv'), 'label', 'classification', {
      labels: first.config.labels,
    });
    await expect(
      train({
        config: irisConfig({ training: { epochs: 1 } }),
        data,
        dataSha256: iris.sha256,
        init: { config: first.config, state: first.state, source: 'iris-test/1' },
        now: () => 0,
      }),
    ).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message:
        'the data\'s feature columns "sepal_width", "sepal_length", "petal_length", "petal_width" are not those of the init checkpoint iris-test/1, "sepal_length", "sepal_width", "petal_length", "petal_width", in that order',
    });
  });
});

describe('a run that diverges is refused, not returned', () => {
  const sgd = (lr: number) => ({
    optimizer: { type: 'sgd', lr },
    lr_schedule: { type: 'constant' },
  });
  // lr 1e300 in one step a epoch (all training rows in one batch): the step's loss is finite, the
  // weights it leaves are ±Infinity in float32.
  const oneStep = { ...sgd(1e300), epochs: 1, batch_size: 120 };

  it('names the step whose training loss is not finite', async () => {
    // 120 training rows in batches of 16: 8 a epoch; SGD at lr 1000 reaches NaN in the second.
    await expect(
      run({ data: { validation_fraction: 0 }, training: sgd(1000) }),
    ).rejects.toMatchObject({
      code: 'TRAINING_DIVERGED',
      message: expect.stringMatching(
        /^training diverged: the training loss is NaN at epoch 2, batch 4 of 8 \(step 12\); nothing was written\. Try a smaller learning rate \(lr 1000 with sgd\) or gradient clipping/,
      ),
    });
  });

  it('names the epoch whose validation loss is not finite', async () => {
    await expect(run({ training: oneStep })).rejects.toMatchObject({
      code: 'TRAINING_DIVERGED',
      message: expect.stringMatching(/^training diverged: the validation loss is NaN at epoch 1;/),
    });
  });

  it('checks the weights it returns: finite losses, non-finite weights after the last step', async () => {
    await expect(
      run({ data: { validation_fraction: 0 }, training: oneStep }),
    ).rejects.toMatchObject({
      code: 'TRAINING_DIVERGED',
      message: expect.stringMatching(
        /^training diverged: after epoch 1 tensor "0\.weight" holds a non-finite value at index 0;/,
      ),
    });
  });
});

describe('sample shapes: a convolutional network on [C, H, W] samples', () => {
  /** Iris's 4 features as a [4, 1, 1] "image": 1×1 convolutions, BatchNorm2d, flatten. */
  const CNN = [
    { type: 'conv2d', in_channels: 4, out_channels: 6, kernel_size: 1 },
    { type: 'batchnorm2d', num_features: 6 },
    { type: 'relu' },
    {
      type: 'residual',
      layers: [
        { type: 'conv2d', in_channels: 6, out_channels: 6, kernel_size: 1, bias: false },
        { type: 'batchnorm2d', num_features: 6 },
      ],
    },
    { type: 'flatten' },
    { type: 'linear', in_features: 6, out_features: 3 },
  ];

  it('trains with input_shape and a constant input scaling, deterministically', async () => {
    const o: Overrides = {
      input_shape: [4, 1, 1],
      layers: CNN,
      data: { input_scaling: { shift: 1, scale: 0.5 } },
    };
    const a = await run(o);
    const b = await run(o);
    expect(bytes(a.state).equals(bytes(b.state))).toBe(true);
    expect(a.config.input_shape).toEqual([4, 1, 1]);
    expect(a.config.input_transform).toEqual({ shift: [1, 1, 1, 1], scale: [0.5, 0.5, 0.5, 0.5] });
    expect([...a.state.keys()]).toContain('3.body.1.running_var');
    // Every batch moved the nested BatchNorm's statistics: 3 epochs of ceil(108 / 16) batches.
    expect(a.state.get('3.body.1.num_batches_tracked')).toBe(21n);
    expect(a.metrics.epochs[2]!.train_loss).toBeLessThan(a.metrics.epochs[0]!.train_loss);
  });

  it('rejects an input_shape that does not hold the feature columns', async () => {
    await expect(run({ input_shape: [2, 2, 2], layers: CNN })).rejects.toMatchObject({
      code: 'TRAINING_CONFIG_INVALID',
      message: expect.stringContaining(
        'input_shape [2, 2, 2] holds 8 values but the data has 4 feature columns',
      ),
    });
  });

  it('rejects a network whose output is not flat', async () => {
    await expect(run({ input_shape: [4, 1, 1], layers: CNN.slice(0, 3) })).rejects.toMatchObject({
      code: 'TRAINING_CONFIG_INVALID',
      message: expect.stringContaining('a flat [outputs] is needed'),
    });
  });
});

describe('regression targets in large units', () => {
  // y = 4000 + 500·x1 − 300·x2 + noise (grams, say), 300 seeded rows.
  const rng = new Rng(11);
  const lines = ['x1,x2,y'];
  for (let i = 0; i < 300; i++) {
    const x1 = rng.uniform(-2, 2);
    const x2 = rng.uniform(-2, 2);
    lines.push(`${x1},${x2},${4000 + 500 * x1 - 300 * x2 + rng.uniform(-20, 20)}`);
  }
  const synthetic = datasetFromTable(parseCsv(lines.join('\n'), 'grams.csv'), 'y', 'regression');
  const regression = (targetScaling: 'standard' | 'none', init?: TrainOutput, lr = 0.01) =>
    train({
      config: parseTrainingConfig(
        {
          name: 'grams',
          task: 'regression',
          seed: 1,
          data: { path: 'grams.csv', label_column: 'y', target_scaling: targetScaling },
          architecture: { hidden: [16], norm: 'none', dropout: 0 },
          training: { epochs: 20, batch_size: 16, optimizer: { type: 'adamw', lr } },
        },
        'grams.json',
      ),
      data: synthetic,
      dataSha256: '-',
      now: () => 0,
      ...(init ? { init: { config: init.config, state: init.state } } : {}),
    });

  it('standardized for training and folded back: the model answers in grams', async () => {
    const scaled = await regression('standard');
    const test = scaled.metrics.test!;
    expect(test.r2).toBeGreaterThan(0.99);
    expect(test.rmse).toBeCloseTo(Math.sqrt(test.loss), 9);
    expect(test.rmse).toBeLessThan(60);
    // The same budget on raw grams barely moves the output bias towards 4000.
    const raw = await regression('none');
    expect(raw.metrics.test!.r2).toBeLessThan(0.5);
  });

  it('fine-tuning a regression checkpoint unfolds the scale first (lr 0 keeps its outputs)', async () => {
    const first = await regression('standard');
    const tuned = await regression('standard', first, 0);
    const x = new Tensor(Float32Array.from([0.5, -1, -1.5, 2]), [2, 2]);
    const predict = (out: TrainOutput) =>
      Array.from(
        networkFromCheckpoint(out.config, out.state, 'grams')
          .eval()
          .forward(new Tensor(applyFeatureTransform(x.data, 2, out.config.input_transform), [2, 2]))
          .data,
      );
    expectRelClose(predict(tuned), predict(first), 1e-5, 'outputs after an lr-0 fine-tune');
  });
});

describe('the event loop while training', () => {
  it('turns between batches without a progress bar (a signal is taken mid-epoch, review53)', async () => {
    // yieldEveryMs 0: a turn after every batch; by default one whenever 20 ms have passed.
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    const out = await train({
      config: irisConfig({ training: { epochs: 1, batch_size: 16 } }),
      data: iris.data,
      dataSha256: iris.sha256,
      yieldEveryMs: 0,
    });
    counting = false;
    const batches = Math.ceil(out.metrics.rows.train / 16);
    expect(batches).toBeGreaterThan(2);
    // One turn per batch at least; the end of the epoch adds one (and validation none).
    expect(turns).toBeGreaterThanOrEqual(batches);
  });
});
