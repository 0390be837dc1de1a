/**
 * The training loop against PyTorch 1.13's (test/fixtures/torch/training-loop.json,
 * `tools/make-golden-fixtures.py training`): from the same initial state, on the same rows in
 * order, train() must reach PyTorch's parameters and BatchNorm buffers — which checks the pieces
 * together: the lr schedule's step count (T_max = batches × epochs) and its order against the
 * optimizer step, clipping after backward, label smoothing, the partial last batch, AdamW's
 * decoupled decay, SGD with Nesterov momentum, BatchNorm2d's cumulative average.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { networkFromCheckpoint, parseModelConfig } from '../../src/checkpoint/index.js';
import { type KernelsName, type StateDict, Tensor } from '../../src/nn/index.js';
import { type LabeledDataset, parseTrainingConfig, train } from '../../src/training/index.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import {
  LOSS_RTOL,
  LR_RTOL,
  OPTIMIZER_STEP_ATOL,
  OUTPUT_ATOL,
  STATS_RTOL,
} from '../helpers/tolerances.js';

interface TensorJson {
  shape: number[];
  data: number[];
}

interface LoopCase {
  name: string;
  task: 'classification' | 'regression';
  input_shape: number[];
  layers: unknown[];
  config: { training: Record<string, unknown> };
  features: TensorJson;
  targets: number[];
  train_rows: number;
  initial_state: Record<string, TensorJson | number>;
  lrs: number[];
  losses: number[];
  epoch_train_losses: number[];
  final_state: Record<string, TensorJson | number>;
  test_outputs: TensorJson;
}

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/torch/training-loop.json', import.meta.url), 'utf8'),
) as { torch_version: string; cases: LoopCase[] };

function stateDict(entries: Record<string, TensorJson | number>): StateDict {
  const state: StateDict = new Map();
  for (const [k, v] of Object.entries(entries))
    state.set(k, typeof v === 'number' ? BigInt(v) : Tensor.from(v.data, v.shape));
  return state;
}

function run(c: LoopCase, engine: KernelsName, losses: number[]) {
  const classes = c.task === 'classification' ? Math.max(...c.targets) + 1 : 0;
  const labels = classes > 0 ? Array.from({ length: classes }, (_, i) => String(i)) : undefined;
  const modelConfig = parseModelConfig({
    format: 'normserve.model/v1',
    name: c.name.replaceAll('_', '-'),
    task: c.task,
    input_shape: c.input_shape,
    ...(labels ? { labels } : {}),
    layers: c.layers,
  });
  const [rows, width] = c.features.shape as [number, number];
  const data: LabeledDataset = {
    featureNames: Array.from({ length: width }, (_, j) => `f${j}`),
    features: Float32Array.from(c.features.data),
    rows,
    width,
    targets: Float32Array.from(c.targets),
    labels,
  };
  const config = parseTrainingConfig(
    {
      name: modelConfig.name,
      task: c.task,
      data: {
        path: `${c.name}.csv`,
        test_split: { from_row: c.train_rows },
        validation_fraction: 0,
        input_scaling: 'none',
        ...(c.task === 'regression' ? { target_scaling: 'none' } : {}),
      },
      training: c.config.training,
    },
    `${c.name}.json`,
  );
  return train({
    config,
    data,
    dataSha256: '-',
    init: { config: modelConfig, state: stateDict(c.initial_state) },
    engine,
    now: () => 0,
    onBatch: (progress) => {
      losses.push(progress.loss);
    },
  });
}

describe(`train() against PyTorch ${fixture.torch_version}'s training loop`, () => {
  for (const c of fixture.cases) {
    for (const engine of ['wasm', 'js'] as const) {
      it(`${c.name} (${engine} kernels): losses, lrs, parameters and buffers`, async () => {
        const losses: number[] = [];
        const { state, metrics, config } = await run(c, engine, losses);
        expectRelClose(losses, c.losses, LOSS_RTOL, 'loss per step');
        expectRelClose(
          metrics.epochs.map((e) => e.train_loss),
          c.epoch_train_losses,
          LOSS_RTOL,
          'train_loss per epoch',
        );
        const stepsPerEpoch = c.lrs.length / metrics.epochs.length;
        expectRelClose(
          metrics.epochs.map((e) => e.lr),
          metrics.epochs.map((_, i) => c.lrs[(i + 1) * stepsPerEpoch - 1]!),
          LR_RTOL,
          'lr of the last step of each epoch',
        );
        expect([...state.keys()]).toEqual(Object.keys(c.final_state));
        for (const [name, expected] of Object.entries(c.final_state)) {
          const actual = state.get(name)!;
          if (typeof expected === 'number') {
            expect(actual, name).toBe(BigInt(expected));
          } else if (name.endsWith('running_mean') || name.endsWith('running_var')) {
            expectRelClose((actual as Tensor).data, expected.data, STATS_RTOL, name);
          } else {
            expectClose((actual as Tensor).data, expected.data, OPTIMIZER_STEP_ATOL, name);
          }
        }
        const network = networkFromCheckpoint(config, state);
        const width = c.features.shape[1]!;
        const test = c.features.data.slice(c.train_rows * width);
        const out = network.forward(
          Tensor.from(test, [test.length / width, ...c.input_shape]),
        ).data;
        expectClose(out, c.test_outputs.data, OUTPUT_ATOL, 'eval outputs on the test rows');
      });
    }
  }
});

describe('optimizer options torch.optim refuses', () => {
  const parse = (optimizer: Record<string, unknown>) => () =>
    parseTrainingConfig({ data: { path: 'x.csv' }, training: { optimizer } }, 'c.json');

  it('refuses Nesterov SGD without momentum or with dampening, in PyTorch words, at parse time', () => {
    for (const optimizer of [
      { type: 'sgd', nesterov: true },
      { type: 'sgd', nesterov: true, momentum: 0.9, dampening: 0.1 },
    ]) {
      expect(parse(optimizer)).toThrow(
        expect.objectContaining({
          code: 'TRAINING_CONFIG_INVALID',
          message:
            'c.json: training.optimizer.nesterov: Nesterov momentum requires a momentum and zero dampening',
        }),
      );
    }
    expect(parse({ type: 'sgd', nesterov: true, momentum: 0.9 })).not.toThrow();
  });
});
