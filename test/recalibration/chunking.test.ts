/**
 * Chunking never changes the statistics: rows pushed in odd-sized pieces and forwarded in chunks
 * of 1, 7 or all rows give the same result (float64 Chan/Welford merging, stored as float32).
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm, type Sequential } from '../../src/nn/index.js';
import {
  createRecalibrator,
  type RecalibrationOptions,
  type RecalibrationResult,
} from '../../src/recalibration/index.js';
import { expectRelClose } from '../helpers/compare.js';
import { loadModel, nightShift, readDigitRows, WIDTH } from './helpers/digits-fixtures.js';
import { CHUNKING_RTOL } from './helpers/recalibration-tolerances.js';

const MODEL_DIR = 'test/fixtures/torch-model/digits-torch/1';
const night = nightShift(readDigitRows().pixels);
const n = night.length / WIDTH;

interface Run {
  network: Sequential;
  result: RecalibrationResult;
}

/** Recalibrates a fresh model, pushing rows in pieces of the given sizes (cycled). */
async function run(options: RecalibrationOptions, pieces: readonly number[]): Promise<Run> {
  const { network, inputTransform, inputWidth } = loadModel(MODEL_DIR);
  const recalibrator = createRecalibrator(network, inputTransform, inputWidth, options);
  let row = 0;
  for (let k = 0; row < n; k++) {
    const size = Math.min(pieces[k % pieces.length]!, n - row);
    await recalibrator.push(night.subarray(row * WIDTH, (row + size) * WIDTH));
    row += size;
  }
  expect(recalibrator.rows).toBe(n);
  return { network, result: await recalibrator.finish() };
}

function batchNorms(network: Sequential): BatchNorm[] {
  return network.modules.filter((m) => m instanceof BatchNorm);
}

function expectSameStatistics(actual: Run, expected: Run, what: string): void {
  const a = batchNorms(actual.network);
  const b = batchNorms(expected.network);
  a.forEach((bn, k) => {
    const other = b[k]!;
    expectRelClose(bn.runningMean.data, other.runningMean.data, CHUNKING_RTOL, `${what} mean ${k}`);
    expectRelClose(bn.runningVar.data, other.runningVar.data, CHUNKING_RTOL, `${what} var ${k}`);
  });
  expect(actual.result.samples).toBe(expected.result.samples);
}

describe('chunking', () => {
  for (const mode of ['exact', 'prior'] as const) {
    it(`${mode}: chunkRows 1, 7 and n with odd-sized pushes agree`, async () => {
      const whole = await run({ mode, chunkRows: n }, [n]);
      const ones = await run({ mode, chunkRows: 1 }, [1, 2, 3, 5, 8, 13]);
      const sevens = await run({ mode, chunkRows: 7 }, [13, 1, 29, 6, 101]);
      const defaults = await run({ mode }, [37, 3]);
      expectSameStatistics(ones, whole, 'chunkRows 1');
      expectSameStatistics(sevens, whole, 'chunkRows 7');
      expectSameStatistics(defaults, whole, 'default chunkRows');
    });
  }

  it('running: batches do not depend on push sizes or chunkRows (bit for bit)', async () => {
    const whole = await run({ mode: 'running', batchSize: 64, chunkRows: n }, [n]);
    const pieces = await run({ mode: 'running', batchSize: 64, chunkRows: 7 }, [1, 50, 13, 64]);
    const a = batchNorms(pieces.network);
    batchNorms(whole.network).forEach((bn, k) => {
      expect(a[k]!.runningMean.data).toEqual(bn.runningMean.data);
      expect(a[k]!.runningVar.data).toEqual(bn.runningVar.data);
      expect(a[k]!.numBatchesTracked).toBe(bn.numBatchesTracked);
    });
    expect(pieces.result).toEqual(whole.result);
  });
});
