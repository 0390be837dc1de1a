/**
 * Recalibration of a network holding every layer type (test/fixtures/torch-model/every-layer-torch,
 * `tools/make-golden-fixtures.py roundtrip`) against PyTorch 1.13: BatchNorm2d without affine and
 * with momentum None, BatchNorm2d inside a residual block behind a rectangular and a dilated
 * conv, BatchNorm1d behind LayerNorm, pooling of three kinds and a flatten; exact mode against
 * statistics taken through forward pre-hooks in float64, running mode against update_bn-style
 * batches of 16 (dropouts in eval).
 */
import { describe, expect, it } from 'vitest';
import { recalibrate } from '../../src/recalibration/index.js';
import {
  batchNorm,
  expectFloat64StatisticsClose,
  loadModel,
  readFixture,
  type TensorJson,
} from './helpers/digits-fixtures.js';
import { expectStatisticsClose } from './helpers/statistics-close.js';

const MODEL_DIR = 'test/fixtures/torch-model/every-layer-torch/1';
const fixture = readFixture<{
  torch_version: string;
  recalibration: {
    input: TensorJson;
    exact: {
      path: string;
      count: number;
      running_mean_float64: TensorJson;
      running_var_float64: TensorJson;
    }[];
    running: {
      batch_size: number;
      batchnorms: {
        path: string;
        running_mean: TensorJson;
        running_var: TensorJson;
        num_batches_tracked: number;
      }[];
    };
  };
}>('torch-model/every-layer-expected.json');
const { input, exact, running } = fixture.recalibration;
const rows = Float32Array.from(input.data);

describe(`recalibrating every layer type against PyTorch ${fixture.torch_version}`, () => {
  it('exact: every BatchNorm within BN_STATISTICS_TOL of the float64 statistics', async () => {
    const { network, inputTransform, inputShape } = loadModel(MODEL_DIR);
    const result = await recalibrate(network, inputTransform, inputShape, rows, { mode: 'exact' });
    expect(result.layers.map((l) => l.path)).toEqual(exact.map((b) => b.path));
    for (const expected of exact) {
      expectFloat64StatisticsClose(network, expected);
    }
  });

  it('running: batches like update_bn, every BatchNorm within BN_STATISTICS_TOL', async () => {
    const { network, inputTransform, inputShape } = loadModel(MODEL_DIR);
    const result = await recalibrate(network, inputTransform, inputShape, rows, {
      mode: 'running',
      batchSize: running.batch_size,
    });
    expect(result.batches).toBe(Math.ceil(input.shape[0]! / running.batch_size));
    for (const expected of running.batchnorms) {
      const bn = batchNorm(network, expected.path);
      expectStatisticsClose(
        { mean: bn.runningMean.data, variance: bn.runningVar.data },
        { mean: expected.running_mean.data, variance: expected.running_var.data },
        bn.eps,
        `${expected.path} (running)`,
      );
      expect(bn.numBatchesTracked).toBe(expected.num_batches_tracked);
    }
  });
});
