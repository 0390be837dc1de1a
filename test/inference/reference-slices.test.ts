/**
 * The unfused path in slices (CompiledModel.referencing, what a server runs for `?fused=false`):
 * the same outputs as one whole call, bit for bit — rows are independent in eval mode — and a
 * yield between slices of at most REFERENCE_SLICE_FLOPS of work, so a server keeps answering.
 */
import { describe, expect, it } from 'vitest';
import {
  CompiledModel,
  planFlopsPerRow,
  REFERENCE_SLICE_FLOPS,
} from '../../src/inference/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { loadModel, readDigitRows } from '../recalibration/helpers/digits-fixtures.js';

describe('CompiledModel.referencing', () => {
  for (const name of ['digits', 'digits-cnn'] as const) {
    it(`${name}: reference()'s outputs bit for bit, yielding between slices`, () => {
      const { network, inputTransform, inputShape } = loadModel(bundledVersionDir(name));
      const model = new CompiledModel(network, inputTransform, 4096, inputShape, {
        engine: TEST_ENGINE,
      });
      try {
        const sliceRows = Math.max(
          1,
          Math.floor(REFERENCE_SLICE_FLOPS / planFlopsPerRow(model.plan)),
        );
        // A whole number of slices and a last short one.
        const rows = 3 * sliceRows + 2;
        const pixels = readDigitRows().pixels.subarray(0, rows * model.inputWidth);
        const whole = model.reference(pixels, rows);
        const work = model.referencing(pixels, rows);
        let yields = 0;
        let step = work.next();
        while (!step.done) {
          yields++;
          step = work.next();
        }
        expect(yields).toBe(3);
        expect(Buffer.from(step.value.buffer).equals(Buffer.from(whole.buffer))).toBe(true);
        // At most one slice: no yield.
        const one = model.referencing(pixels, sliceRows).next();
        expect(one.done).toBe(true);
      } finally {
        model.close();
      }
    });
  }
});
