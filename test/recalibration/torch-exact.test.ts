/**
 * `exact` recalibration of the PyTorch-trained digits-torch model on the "night" rows against
 * PyTorch's layer-by-layer statistics (test/fixtures/torch-model/recalibration.json, written by
 * tools/make-golden-fixtures.py).
 */
import { describe, expect, it } from 'vitest';
import { CompiledModel } from '../../src/inference/index.js';
import { BatchNorm } from '../../src/nn/index.js';
import { recalibrate } from '../../src/recalibration/index.js';
import { expectClose } from '../helpers/compare.js';
import { FUSION_ATOL, OUTPUT_ATOL } from '../helpers/tolerances.js';
import {
  accuracy,
  argmaxRows,
  loadModel,
  nightShift,
  readDigitRows,
  readFixture,
  type TensorJson,
  WIDTH,
} from './helpers/digits-fixtures.js';
import { expectStatisticsClose } from './helpers/statistics-close.js';

interface RecalibrationFixture {
  num_rows: number;
  labels: number[];
  batchnorms: { index: number; count: number; running_mean: TensorJson; running_var: TensorJson }[];
  recalibrated: { logits: TensorJson; predictions: number[]; accuracy: number };
}

const MODEL_DIR = 'test/fixtures/torch-model/digits-torch/1';

describe('exact recalibration against PyTorch (digits-torch, night rows)', () => {
  const fixture = readFixture<RecalibrationFixture>('torch-model/recalibration.json');
  const { pixels, labels } = readDigitRows();
  const night = nightShift(pixels);

  it('reproduces the running statistics, layer by layer', async () => {
    const { network, inputTransform, inputWidth } = loadModel(MODEL_DIR);
    const before = network.modules
      .filter((m) => m instanceof BatchNorm)
      .map((bn) => bn.numBatchesTracked);
    const result = await recalibrate(network, inputTransform, inputWidth, night, { mode: 'exact' });

    expect(labels).toEqual(fixture.labels);
    expect(result.samples).toBe(fixture.num_rows);
    expect(result.batches).toBeUndefined();
    expect(result.layers.map((l) => [l.index, l.features])).toEqual([
      [1, 32],
      [5, 16],
    ]);
    for (const expected of fixture.batchnorms) {
      const bn = network.modules[expected.index];
      if (!(bn instanceof BatchNorm)) throw new Error(`layer ${expected.index} is not a BatchNorm`);
      expect(expected.count).toBe(result.samples);
      expectStatisticsClose(
        { mean: bn.runningMean.data, variance: bn.runningVar.data },
        { mean: expected.running_mean.data, variance: expected.running_var.data },
        bn.eps,
        `${expected.index} (exact)`,
      );
    }
    // num_batches_tracked counts training steps of the source model: untouched.
    expect(
      network.modules.filter((m) => m instanceof BatchNorm).map((bn) => bn.numBatchesTracked),
    ).toEqual(before);
  });

  it("predicts PyTorch's classes with the recalibrated model (fused and unfused)", async () => {
    const { network, inputTransform, inputWidth, inputShape } = loadModel(MODEL_DIR);
    await recalibrate(network, inputTransform, inputWidth, night, { mode: 'exact' });
    const rows = night.length / WIDTH;
    const model = new CompiledModel(network, inputTransform, rows, inputShape);
    const fused = model.forward(night, rows).slice();
    const reference = model.reference(night, rows);
    expectClose(fused, reference, FUSION_ATOL, 'fused vs unfused logits');
    // PyTorch's recalibrated float32 checkpoint evaluated in float64 (reference-float64.json).
    const float64 = readFixture<{ recalibrated: { logits: TensorJson } }>(
      'torch-model/reference-float64.json',
    );
    expectClose(reference, float64.recalibrated.logits.data, OUTPUT_ATOL, 'recalibrated logits');
    expect(argmaxRows(fused, 10)).toEqual(fixture.recalibrated.predictions);
    expect(argmaxRows(reference, 10)).toEqual(fixture.recalibrated.predictions);
    expect(accuracy(argmaxRows(fused, 10), labels)).toBe(fixture.recalibrated.accuracy);
  });
});
