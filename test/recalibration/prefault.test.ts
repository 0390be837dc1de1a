/**
 * The first pass that runs on the calling thread backs its new executor's memory in slices,
 * with pause() between them, before it measures the first chunk (LayerInputStatistics.prefault):
 * the page faults of its buffers would otherwise fall in the same turn as the chunk's work. It
 * changes nothing computed: the executor's results and the stored statistics are the same bits.
 */
import { describe, expect, it } from 'vitest';
import {
  compileNetwork,
  detectWasmSupport,
  PlanExecutor,
  WasmExecutor,
} from '../../src/inference/index.js';
import { createRecalibrator } from '../../src/recalibration/index.js';
import { PREFAULT_SLICE_BYTES } from '../../src/recalibration/recalibration-options.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { loadModel, nightShift, readDigitRows } from './helpers/digits-fixtures.js';

prepareWasmRuntime();
const CNN = bundledVersionDir('digits-cnn');
const rows = nightShift(readDigitRows().pixels);
const n = rows.length / 64;
/** The fixture's rows repeated to more than a 4,096-row chunk: the first chunk is a whole one. */
const manyRows = new Float32Array(rows.length * Math.ceil(4097 / n));
for (let at = 0; at < manyRows.length; at += rows.length) manyRows.set(rows, at);
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('Executor.prefault', () => {
  it('wasm: touches its memory a slice per call until none is left, and changes nothing it computes', () => {
    const { network, inputTransform, inputShape } = loadModel(CNN);
    const plan = compileNetwork(network, inputTransform, inputShape);
    const options = {
      maxBatchSize: 4096,
      threads: 1,
      relaxedSimd: detectWasmSupport().relaxedSimd,
    };
    const before = new WasmExecutor(plan, options).run(rows, n);
    const executor = new WasmExecutor(plan, options);
    let calls = 1;
    while (executor.prefault(4096, 1 << 16)) calls++;
    // Its input region alone holds 4,096 rows of 64 float32 values: 1 MiB, 16 slices of 64 KiB.
    expect(calls).toBeGreaterThan(16);
    expect(executor.prefault(4096, 1 << 16)).toBe(false);
    expect(bits(executor.run(rows, n))).toEqual(bits(before));
  });

  it('wasm: touches only what a call of the rows it is given writes', () => {
    const { network, inputTransform, inputShape } = loadModel(CNN);
    // The prefix that stops at the first BatchNorm: 4,096 rows of [16, 8, 8] outputs are 16 MiB.
    const plan = compileNetwork(network, inputTransform, inputShape, { until: '1' });
    const options = { maxBatchSize: 4096, threads: 1, relaxedSimd: false };
    const slices = (rows: number) => {
      const executor = new WasmExecutor(plan, options);
      let calls = 1;
      while (executor.prefault(rows, 1 << 16)) calls++;
      return calls;
    };
    const full = slices(4096);
    expect(full).toBeGreaterThan((16 << 20) >> 16);
    // One row's input and output are a few KiB: what is left is the thread's scratch.
    expect(slices(1) * 4).toBeLessThan(full);
    expect(slices(1)).toBeLessThan(slices(64));
  });

  it('js: nothing to touch', () => {
    const { network, inputTransform, inputShape } = loadModel(CNN);
    const executor = new PlanExecutor(compileNetwork(network, inputTransform, inputShape), 64);
    expect(executor.prefault(4096, 1 << 20)).toBe(false);
  });
});

describe('the first pass on the calling thread', () => {
  /** Pauses awaited before the first chunk's 'receiving' progress, and the stored statistics. */
  async function firstChunk(threads: number, withPause = true) {
    const { network, inputTransform, inputShape } = loadModel(CNN);
    let pauses = 0;
    let pausesBeforeProgress: number | undefined;
    const recalibrator = createRecalibrator(network, inputTransform, inputShape, {
      mode: 'exact',
      engine: nodeEngineOptions({ engine: TEST_ENGINE, threads }),
      ...(withPause && {
        pause: async () => {
          pauses++;
          await new Promise((r) => setImmediate(r));
        },
      }),
      onProgress: (p) => {
        if (p.phase === 'receiving') pausesBeforeProgress ??= pauses;
      },
    });
    await recalibrator.push(manyRows);
    await recalibrator.finish();
    const statistics = [...network.stateDict()]
      .filter(([name]) => name.endsWith('running_mean') || name.endsWith('running_var'))
      .map(([name, v]) => [name, bits((v as { data: Float32Array }).data)]);
    return { pausesBeforeProgress, statistics };
  }

  it('backs its executor memory in slices, with pauses, before its first chunk (wasm)', async () => {
    const { pausesBeforeProgress } = await firstChunk(1);
    // The first chunk's 4,096 rows of [16, 8, 8] outputs through the first BatchNorm's prefix
    // are 16 MiB.
    const slices = Math.floor((16 << 20) / PREFAULT_SLICE_BYTES);
    if (TEST_ENGINE === 'wasm') expect(pausesBeforeProgress).toBeGreaterThanOrEqual(slices);
    else expect(pausesBeforeProgress).toBe(0);
  });

  it('not where a helper thread takes the pass (its page faults are not the event loop’s)', async () => {
    expect((await firstChunk(2)).pausesBeforeProgress).toBe(0);
  });

  it('stores the same bits with or without it', async () => {
    const sliced = await firstChunk(1);
    const whole = await firstChunk(1, false);
    // Four BatchNorms, a mean and a variance each.
    expect(sliced.statistics.length).toBe(8);
    expect(sliced.statistics).toEqual(whole.statistics);
  });
});
