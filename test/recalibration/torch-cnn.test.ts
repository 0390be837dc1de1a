/**
 * Recalibration of BatchNorm2d layers — per channel over N·H·W, inside residual blocks too — on
 * the PyTorch-trained CNN digits-cnn-torch and the night rows, against PyTorch
 * (test/fixtures/torch-model/cnn-recalibration.json, `tools/make-golden-fixtures.py cnn`): exact
 * mode against the layer-by-layer statistics computed in float64 through forward pre-hooks,
 * running mode against update_bn-style batches.
 */
import { describe, expect, it } from 'vitest';
import { CompiledModel } from '../../src/inference/index.js';
import { recalibrate } from '../../src/recalibration/index.js';
import { expectClose } from '../helpers/compare.js';
import { FUSION_ATOL, OUTPUT_ATOL } from '../helpers/tolerances.js';
import {
  accuracy,
  argmaxRows,
  batchNorm,
  expectFloat64StatisticsClose,
  loadModel,
  nightShift,
  readDigitRows,
  readFixture,
  type TensorJson,
} from './helpers/digits-fixtures.js';
import { expectStatisticsClose } from './helpers/statistics-close.js';

interface CnnRecalibrationFixture {
  labels: number[];
  night: { accuracy: number };
  exact: {
    batchnorms: {
      path: string;
      count: number;
      running_mean_float64: TensorJson;
      running_var_float64: TensorJson;
    }[];
    logits: TensorJson;
    predictions: number[];
    accuracy: number;
  };
  running: {
    batch_size: number;
    batchnorms: {
      path: string;
      running_mean: TensorJson;
      running_var: TensorJson;
      num_batches_tracked: number;
    }[];
  };
}

interface SmallBatchesFixture {
  running: (CnnRecalibrationFixture['running'] & { rows: number })[];
  exact_one_row: { batchnorms: CnnRecalibrationFixture['exact']['batchnorms'] };
}

const MODEL_DIR = 'test/fixtures/torch-model/digits-cnn-torch/1';
/** prior's blend, computed from the float64 target, against one from the float32-stored target. */
const BLEND_RTOL = 1e-6;
const fixture = readFixture<CnnRecalibrationFixture>('torch-model/cnn-recalibration.json');
const small = readFixture<SmallBatchesFixture>('torch-model/cnn-recalibration-small-batches.json');
const { pixels, labels } = readDigitRows();
const night = nightShift(pixels);
const rows = labels.length;

describe('BatchNorm2d recalibration against PyTorch (digits-cnn-torch, night rows)', () => {
  it('exact: every BatchNorm2d, nested ones included, within BN_STATISTICS_TOL of PyTorch', async () => {
    const { network, inputTransform, inputShape } = loadModel(MODEL_DIR);
    expect(inputShape).toEqual([1, 8, 8]);
    const result = await recalibrate(network, inputTransform, inputShape, night, {
      mode: 'exact',
    });
    expect(labels).toEqual(fixture.labels);
    expect(result.layers.map((l) => [l.index, l.path, l.features])).toEqual([
      [1, '1', 16],
      [3, '3.body.1', 16],
      [3, '3.body.4', 16],
      [6, '6', 32],
    ]);
    expect(fixture.exact.batchnorms.map((b) => b.path)).toEqual(result.layers.map((l) => l.path));
    for (const expected of fixture.exact.batchnorms) {
      // Statistics per channel over N·H·W values: 360·8·8 before the pooling, 360·4·4 after.
      expect(expected.count).toBe(expected.path === '6' ? rows * 16 : rows * 64);
      expectFloat64StatisticsClose(network, expected);
    }
  });

  it("exact: the recalibrated model recovers the night rows with PyTorch's predictions, fused and unfused", async () => {
    const { network, inputTransform, inputShape } = loadModel(MODEL_DIR);
    const before = new CompiledModel(network, inputTransform, rows, inputShape);
    const nightAccuracy = accuracy(argmaxRows(before.forward(night, rows).slice(), 10), labels);
    expect(nightAccuracy).toBe(fixture.night.accuracy);
    await recalibrate(network, inputTransform, inputShape, night, { mode: 'exact' });
    const model = new CompiledModel(network, inputTransform, rows, inputShape);
    const fused = model.forward(night, rows).slice();
    const reference = model.reference(night, rows);
    expectClose(fused, reference, FUSION_ATOL, 'fused vs unfused logits');
    // PyTorch's float32 logits (up to ~10 here): measured 4.8e-6 unfused, 6.0e-6 fused.
    expectClose(reference, fixture.exact.logits.data, OUTPUT_ATOL, "PyTorch's recalibrated logits");
    expectClose(
      fused,
      fixture.exact.logits.data,
      OUTPUT_ATOL,
      "PyTorch's recalibrated logits, fused",
    );
    expect(argmaxRows(fused, 10)).toEqual(fixture.exact.predictions);
    expect(accuracy(argmaxRows(fused, 10), labels)).toBe(fixture.exact.accuracy);
    expect(fixture.exact.accuracy).toBeGreaterThanOrEqual(0.97);
  });

  it('running: batches of 64 like update_bn, every BatchNorm2d within BN_STATISTICS_TOL of PyTorch', async () => {
    const { network, inputTransform, inputShape } = loadModel(MODEL_DIR);
    const result = await recalibrate(network, inputTransform, inputShape, night, {
      mode: 'running',
      batchSize: fixture.running.batch_size,
    });
    expect(result.batches).toBe(6);
    for (const expected of fixture.running.batchnorms) {
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

  it('prior with strength 0 is exact, bit for bit', async () => {
    const exact = loadModel(MODEL_DIR);
    await recalibrate(exact.network, exact.inputTransform, exact.inputShape, night, {
      mode: 'exact',
    });
    const prior0 = loadModel(MODEL_DIR);
    await recalibrate(prior0.network, prior0.inputTransform, prior0.inputShape, night, {
      mode: 'prior',
      priorStrength: 0,
    });
    expect(prior0.network.stateDict()).toEqual(exact.network.stateDict());
  });

  it('prior blends a BatchNorm2d in rows: w = N/(N + n), n the rows, not n·H·W (docs/recalibration.md)', async () => {
    const N = 16;
    const rows = night.length / 64;
    const source = loadModel(MODEL_DIR);
    const exact = loadModel(MODEL_DIR);
    await recalibrate(exact.network, exact.inputTransform, exact.inputShape, night, {
      mode: 'exact',
    });
    const prior = loadModel(MODEL_DIR);
    await recalibrate(prior.network, prior.inputTransform, prior.inputShape, night, {
      mode: 'prior',
      priorStrength: N,
    });
    // The first BatchNorm2d (on 8 × 8 maps) sees no earlier BatchNorm, so its target statistics
    // are exact mode's: the blend t + w·(s − t) is checked against them.
    const s = batchNorm(source.network, '1');
    const t = batchNorm(exact.network, '1');
    const p = batchNorm(prior.network, '1');
    const w = N / (N + rows);
    const blend = (src: Float32Array, tgt: Float32Array) =>
      Array.from(tgt, (v, c) => v + w * (src[c]! - v));
    // float32 storage of float64 blends of float32-rounded targets: a few float32 ulps apart.
    const worst = (actual: Float32Array, expected: number[]) =>
      Math.max(...expected.map((e, c) => Math.abs(actual[c]! - e) / Math.max(Math.abs(e), 1)));
    expect(worst(p.runningMean.data, blend(s.runningMean.data, t.runningMean.data))).toBeLessThan(
      BLEND_RTOL,
    );
    expect(worst(p.runningVar.data, blend(s.runningVar.data, t.runningVar.data))).toBeLessThan(
      BLEND_RTOL,
    );
    // Weighed in values (n·H·W = 64·n) the prior would nearly vanish: not what is computed.
    const wValues = N / (N + rows * 64);
    const byValues = Array.from(
      t.runningMean.data,
      (v, c) => v + wValues * (s.runningMean.data[c]! - v),
    );
    expect(
      Math.max(...byValues.map((v, c) => Math.abs(v - p.runningMean.data[c]!))),
    ).toBeGreaterThan(1e-3);
  });
});

// One row gives every BatchNorm2d here 64 (8×8) or 16 (4×4) values per channel: a batch PyTorch
// trains (it refuses N·H·W = 1 only), so a batch of one row is used, not skipped
// (test/fixtures/torch-model/cnn-recalibration-small-batches.json, `tools/make-golden-fixtures.py
// cnn_small_batches`).
describe('batches of one row through BatchNorm2d, against PyTorch (digits-cnn-torch)', () => {
  for (const expected of small.running) {
    it(`running: ${expected.rows} rows in batches of ${expected.batch_size} count ${Math.ceil(expected.rows / expected.batch_size)} batches, the last of ${expected.rows % expected.batch_size || expected.batch_size} row(s), as update_bn`, async () => {
      const { network, inputTransform, inputShape } = loadModel(MODEL_DIR);
      const data = night.subarray(0, expected.rows * 64);
      const result = await recalibrate(network, inputTransform, inputShape, data, {
        mode: 'running',
        batchSize: expected.batch_size,
      });
      const batches = Math.ceil(expected.rows / expected.batch_size);
      expect(result).toMatchObject({ samples: expected.rows, batches, skipped: 0 });
      for (const layer of expected.batchnorms) {
        const bn = batchNorm(network, layer.path);
        expect(bn.numBatchesTracked).toBe(layer.num_batches_tracked);
        expect(layer.num_batches_tracked).toBe(batches);
        expectStatisticsClose(
          { mean: bn.runningMean.data, variance: bn.runningVar.data },
          { mean: layer.running_mean.data, variance: layer.running_var.data },
          bn.eps,
          `${layer.path} (running, ${expected.rows} rows in batches of ${expected.batch_size})`,
        );
      }
    });
  }

  it('exact: one row is enough (H·W values per channel), every BatchNorm2d within BN_STATISTICS_TOL of PyTorch', async () => {
    const { network, inputTransform, inputShape } = loadModel(MODEL_DIR);
    const result = await recalibrate(network, inputTransform, inputShape, night.subarray(0, 64), {
      mode: 'exact',
    });
    expect(result.samples).toBe(1);
    for (const expected of small.exact_one_row.batchnorms) {
      expect(expected.count).toBe(expected.path === '6' ? 16 : 64);
      expectFloat64StatisticsClose(network, expected);
    }
  });
});
