/**
 * `running` mode (like torch.optim.swa_utils.update_bn, Dropout off): against a direct float64
 * computation with the nn layers, and against PyTorch (recalibration-running.json, written by
 * tools/make-golden-fixtures.py).
 */
import { describe, expect, it } from 'vitest';
import { CompiledModel } from '../../src/inference/index.js';
import {
  applyFeatureTransform,
  BatchNorm,
  Dropout,
  type Sequential,
  Tensor,
} from '../../src/nn/index.js';
import { createRecalibrator, recalibrate } from '../../src/recalibration/index.js';
import { expectRelClose } from '../helpers/compare.js';
import {
  argmaxRows,
  loadModel,
  nightShift,
  readDigitRows,
  readFixture,
  type TensorJson,
  WIDTH,
} from './helpers/digits-fixtures.js';
import { CUMULATIVE_AVERAGE_RTOL } from './helpers/recalibration-tolerances.js';
import { expectStatisticsClose } from './helpers/statistics-close.js';

const MODEL_DIR = 'test/fixtures/torch-model/digits-torch/1';
const night = nightShift(readDigitRows().pixels);
const n = night.length / WIDTH;

function batchNorms(network: Sequential): BatchNorm[] {
  return network.modules.filter((m) => m instanceof BatchNorm);
}

/**
 * The definition, computed directly: for each batch, every layer in eval mode except that each
 * BatchNorm normalizes with the batch mean and biased variance (float64); its statistic for the
 * batch is the mean and unbiased variance; the result is the plain average over batches.
 */
function directRunningStatistics(
  network: Sequential,
  x: Float32Array,
  batchSize: number,
): { mean: Float64Array; variance: Float64Array; batches: number }[] {
  network.eval();
  const rows = x.length / WIDTH;
  const sums = batchNorms(network).map((bn) => ({
    mean: new Float64Array(bn.numFeatures),
    variance: new Float64Array(bn.numFeatures),
    batches: 0,
  }));
  for (let start = 0; start + 2 <= rows; start += batchSize) {
    const end = Math.min(rows, start + batchSize);
    const b = end - start;
    let h = new Tensor(x.slice(start * WIDTH, end * WIDTH), [b, WIDTH]);
    let k = 0;
    for (const m of network.modules) {
      if (!(m instanceof BatchNorm)) {
        h = m.forward(h);
        continue;
      }
      const c = m.numFeatures;
      const out = new Float32Array(h.data.length);
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let r = 0; r < b; r++) sum += h.data[r * c + ch]!;
        const mean = sum / b;
        let sq = 0;
        for (let r = 0; r < b; r++) sq += (h.data[r * c + ch]! - mean) ** 2;
        sums[k]!.mean[ch]! += mean;
        sums[k]!.variance[ch]! += sq / (b - 1);
        const inv = 1 / Math.sqrt(sq / b + m.eps);
        for (let r = 0; r < b; r++) {
          out[r * c + ch] =
            (h.data[r * c + ch]! - mean) * inv * m.weight!.value.data[ch]! +
            m.bias!.value.data[ch]!;
        }
      }
      sums[k]!.batches += 1;
      h = new Tensor(out, h.shape);
      k++;
    }
  }
  return sums.map((s) => ({
    mean: s.mean.map((v) => v / s.batches),
    variance: s.variance.map((v) => v / s.batches),
    batches: s.batches,
  }));
}

interface RunningFixture {
  batch_size: number;
  num_batches: number;
  batchnorms: {
    index: number;
    running_mean: TensorJson;
    running_var: TensorJson;
    num_batches_tracked: number;
  }[];
  recalibrated: { predictions: number[]; accuracy: number };
}

describe('running mode', () => {
  it('equals the direct per-batch computation; num_batches_tracked = batches', async () => {
    for (const batchSize of [64, 100, 2]) {
      const model = loadModel(MODEL_DIR);
      const reference = loadModel(MODEL_DIR);
      const expected = directRunningStatistics(
        reference.network,
        applyFeatureTransform(night, WIDTH, reference.inputTransform),
        batchSize,
      );
      const result = await recalibrate(model.network, model.inputTransform, WIDTH, night, {
        mode: 'running',
        batchSize,
      });
      const batches = Math.ceil(n / batchSize);
      expect(result).toMatchObject({ samples: n, batches, skipped: 0 });
      batchNorms(model.network).forEach((bn, k) => {
        expect(expected[k]!.batches).toBe(batches);
        expect(bn.numBatchesTracked).toBe(batches);
        expectRelClose(
          bn.runningMean.data,
          expected[k]!.mean,
          CUMULATIVE_AVERAGE_RTOL,
          `batch ${batchSize}: mean ${k}`,
        );
        expectRelClose(
          bn.runningVar.data,
          expected[k]!.variance,
          CUMULATIVE_AVERAGE_RTOL,
          `batch ${batchSize}: var ${k}`,
        );
      });
    }
  });

  it("reproduces PyTorch's update_bn-style statistics (dropout in eval)", async () => {
    const fixture = readFixture<RunningFixture>('torch-model/recalibration-running.json');
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const result = await recalibrate(network, inputTransform, WIDTH, night, {
      mode: 'running',
      batchSize: fixture.batch_size,
    });
    expect(result.batches).toBe(fixture.num_batches);
    expect(result.layers.map((l) => l.index)).toEqual(fixture.batchnorms.map((b) => b.index));
    for (const expected of fixture.batchnorms) {
      const bn = network.modules[expected.index] as BatchNorm;
      expectStatisticsClose(
        { mean: bn.runningMean.data, variance: bn.runningVar.data },
        { mean: expected.running_mean.data, variance: expected.running_var.data },
        bn.eps,
        `${expected.index} (running)`,
      );
      expect(bn.numBatchesTracked).toBe(expected.num_batches_tracked);
    }
    const logits = new CompiledModel(network, inputTransform, n, WIDTH).forward(night, n);
    expect(argmaxRows(logits, 10)).toEqual(fixture.recalibrated.predictions);
  });

  it('skips a final batch of one row and reports it', async () => {
    const rows = 129;
    const data = night.subarray(0, rows * WIDTH);
    const withLast = loadModel(MODEL_DIR);
    const result = await recalibrate(withLast.network, withLast.inputTransform, WIDTH, data, {
      mode: 'running',
      batchSize: 64,
    });
    expect(result).toMatchObject({ samples: 129, batches: 2, skipped: 1 });
    const without = loadModel(MODEL_DIR);
    await recalibrate(
      without.network,
      without.inputTransform,
      WIDTH,
      data.subarray(0, 128 * WIDTH),
      {
        mode: 'running',
        batchSize: 64,
      },
    );
    const other = batchNorms(without.network);
    batchNorms(withLast.network).forEach((bn, k) => {
      expect(bn.numBatchesTracked).toBe(2);
      expect(bn.runningMean.data).toEqual(other[k]!.runningMean.data);
      expect(bn.runningVar.data).toEqual(other[k]!.runningVar.data);
    });
  });

  it('restores train/eval modes and leaves momentum as configured; forwards with Dropout off', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    network.train();
    const momenta = batchNorms(network).map((bn) => bn.momentum);
    const dropout = network.modules.find((m) => m instanceof Dropout);
    expect(dropout).toBeDefined();
    const recalibrator = createRecalibrator(network, inputTransform, WIDTH, {
      mode: 'running',
      batchSize: 64,
    });
    await recalibrator.push(night.subarray(0, 100 * WIDTH));
    // Between calls the network keeps the caller's modes (and momenta, which nothing sets).
    expect(network.modules.every((m) => m.training)).toBe(true);
    expect(batchNorms(network).map((bn) => bn.momentum)).toEqual(momenta);
    await recalibrator.push(night.subarray(100 * WIDTH));
    await recalibrator.finish();
    expect(network.training).toBe(true);
    expect(network.modules.every((m) => m.training)).toBe(true);
    expect(batchNorms(network).map((bn) => bn.momentum)).toEqual(momenta);
    expect(momenta.every((m) => m === 0.1)).toBe(true);

    // Dropout was off: a model started in train mode gets exactly what one in eval mode gets.
    const evalModel = loadModel(MODEL_DIR);
    await recalibrate(evalModel.network, evalModel.inputTransform, WIDTH, night, {
      mode: 'running',
      batchSize: 64,
    });
    const other = batchNorms(evalModel.network);
    batchNorms(network).forEach((bn, k) => {
      expect(bn.runningVar.data).toEqual(other[k]!.runningVar.data);
    });
    expect(evalModel.network.modules.some((m) => m.training)).toBe(false);
  });
});
