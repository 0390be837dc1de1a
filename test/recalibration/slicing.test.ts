/**
 * The passes that run on the calling thread (the later BatchNorms of `exact`/`prior`, every
 * later BatchNorm of a `running` batch) measure a chunk in slices whose work stays within
 * SYNC_SLICE_BUDGET_FLOPS, pausing between them: a slice is ⌊budget ÷ flops per row⌋ rows, and
 * the merged moments are the unsliced ones up to float64 rounding.
 */
import { describe, expect, it } from 'vitest';
import { compileNetwork, planFlopsPerRow } from '../../src/inference/index.js';
import { batchNormLayers } from '../../src/recalibration/batch-norm-layers.js';
import { LayerInputStatistics } from '../../src/recalibration/layer-input-statistics.js';
import { SYNC_SLICE_BUDGET_FLOPS } from '../../src/recalibration/recalibration-options.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { expectRelClose } from '../helpers/compare.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { FLOAT64_REGROUP_RTOL } from '../helpers/tolerances.js';
import { loadModel, nightShift, readDigitRows, WIDTH } from './helpers/digits-fixtures.js';

const night = nightShift(readDigitRows().pixels);
const rows = night.length / WIDTH;

describe('slices of bounded work on the calling thread', () => {
  for (const dir of [bundledVersionDir('digits-cnn'), bundledVersionDir('digits')]) {
    it(`${dir}: every later BatchNorm's slice follows the budget, and the sliced moments are the unsliced ones`, async () => {
      const { network, inputTransform, inputShape } = loadModel(dir);
      const source = {
        network,
        inputTransform,
        inputShape,
        engine: { engine: TEST_ENGINE, threads: 1 },
        batchRows: rows,
      };
      for (const layer of batchNormLayers(network).slice(1)) {
        const inputs = new LayerInputStatistics(source, layer);
        try {
          const flopsPerRow = planFlopsPerRow(
            compileNetwork(network, inputTransform, inputShape, {
              until: layer.path,
              foldBatchNorms: false,
            }),
          );
          const slice = inputs.sliceRows;
          // The most rows whose work fits the budget.
          expect(slice * flopsPerRow).toBeLessThanOrEqual(SYNC_SLICE_BUDGET_FLOPS);
          expect((slice + 1) * flopsPerRow).toBeGreaterThan(SYNC_SLICE_BUDGET_FLOPS);

          // Both about the same shift (LayerInputStatistics sums about the mean of the rows it
          // measured last; the first call about running_mean, 1.7e3 variances from the night
          // rows' mean here, rounds M2 by 4e-12 instead of 1e-15): the regrouping is what differs.
          inputs.measure(night, rows);
          let pauses = 0;
          const sliced = await inputs.measureInSlices(night, rows, async () => {
            pauses += 1;
          });
          const whole = inputs.measure(night, rows);
          // One pause between consecutive slices.
          expect(pauses).toBe(Math.ceil(rows / slice) - 1);
          expect(sliced.count).toBe(whole.count);
          expectRelClose(sliced.mean, whole.mean, FLOAT64_REGROUP_RTOL, `${layer.path} mean`);
          expectRelClose(sliced.m2, whole.m2, FLOAT64_REGROUP_RTOL, `${layer.path} M2`);
        } finally {
          inputs.close();
        }
      }
    });
  }

  it("digits-cnn's later prefixes slice the 360 test rows, the MLP's take them whole", () => {
    // So that the first test compares sliced moments on the CNN. (The MLP's second prefix,
    // 33,152 flops a row, is sliced at 1,508 rows: a stored chunk of 4,096 rows takes 3 slices.)
    const sliceOf = (dir: string) => {
      const { network, inputTransform, inputShape } = loadModel(dir);
      return batchNormLayers(network)
        .slice(1)
        .map((layer) => {
          const s = new LayerInputStatistics(
            { network, inputTransform, inputShape, engine: { engine: TEST_ENGINE }, batchRows: 8 },
            layer,
          );
          s.close();
          return s.sliceRows;
        });
    };
    for (const slice of sliceOf(bundledVersionDir('digits-cnn')))
      expect(slice).toBeLessThan(rows / 2);
    for (const slice of sliceOf(bundledVersionDir('digits'))) expect(slice).toBeGreaterThan(rows);
  });
});
