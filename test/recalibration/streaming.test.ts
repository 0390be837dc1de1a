/**
 * The streaming contract: progress reports, pause() between chunks, and pushed chunks copied
 * (the caller may reuse its buffer).
 */
import { describe, expect, it } from 'vitest';
import { BatchNorm } from '../../src/nn/index.js';
import {
  createRecalibrator,
  type RecalibrationProgress,
  recalibrate,
} from '../../src/recalibration/index.js';
import { loadModel, nightShift, readDigitRows, WIDTH } from './helpers/digits-fixtures.js';

const MODEL_DIR = 'test/fixtures/torch-model/digits-torch/1';
const night = nightShift(readDigitRows().pixels);
const n = night.length / WIDTH;

describe('streaming', () => {
  it('exact: reports receiving then statistics per layer, pausing between chunks', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const events: RecalibrationProgress[] = [];
    let pauses = 0;
    await recalibrate(network, inputTransform, WIDTH, night, {
      mode: 'exact',
      chunkRows: 100,
      onProgress: (p) => events.push(p),
      pause: async () => {
        pauses++;
      },
    });
    const receiving = events.filter((e) => e.phase === 'receiving');
    expect(receiving.map((e) => e.rows)).toEqual([100, 200, 300, 360]);
    expect(receiving.every((e) => e.totalRows === n && e.layer === undefined)).toBe(true);
    const statistics = events.filter((e) => e.phase === 'statistics');
    expect(statistics.map((e) => [e.layer, e.rows])).toEqual([
      [1, 360],
      [5, 100],
      [5, 200],
      [5, 300],
      [5, 360],
    ]);
    expect(statistics.every((e) => e.totalRows === n)).toBe(true);
    expect(events.indexOf(statistics[0]!)).toBe(receiving.length);
    expect(pauses).toBe(4 + 4);
  });

  it('running: statistics are reported per batch as rows arrive', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const events: RecalibrationProgress[] = [];
    const recalibrator = createRecalibrator(network, inputTransform, WIDTH, {
      mode: 'running',
      batchSize: 64,
      onProgress: (p) => events.push(p),
    });
    await recalibrator.push(night.subarray(0, 150 * WIDTH));
    expect(events).toEqual([
      { phase: 'statistics', rows: 64, totalRows: 64 },
      { phase: 'statistics', rows: 128, totalRows: 128 },
      { phase: 'receiving', rows: 150, totalRows: 150 },
    ]);
    await recalibrator.push(night.subarray(150 * WIDTH));
    const result = await recalibrator.finish();
    expect(result.batches).toBe(6);
    expect(events.at(-1)).toEqual({ phase: 'statistics', rows: 360, totalRows: 360 });
  });

  it('pushed rows are copied: the caller may overwrite its buffer', async () => {
    const reused = loadModel(MODEL_DIR);
    const buffer = new Float32Array(40 * WIDTH);
    // No input transform: the rows kept would otherwise be views of the caller's buffer.
    const recalibrator = createRecalibrator(reused.network, undefined, WIDTH, { mode: 'exact' });
    for (let row = 0; row < n; row += 40) {
      buffer.set(night.subarray(row * WIDTH, (row + 40) * WIDTH));
      await recalibrator.push(buffer);
      buffer.fill(1e6);
    }
    await recalibrator.finish();
    const direct = loadModel(MODEL_DIR);
    await recalibrate(direct.network, undefined, WIDTH, night, { mode: 'exact' });
    const a = direct.network.modules.filter((m) => m instanceof BatchNorm);
    reused.network.modules
      .filter((m) => m instanceof BatchNorm)
      .forEach((bn, k) => {
        expect(bn.runningMean.data).toEqual(a[k]!.runningMean.data);
        expect(bn.runningVar.data).toEqual(a[k]!.runningVar.data);
      });
  });
});
