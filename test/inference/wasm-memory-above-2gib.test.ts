/**
 * The WebAssembly engine's memory past 2 GiB. A model on ImageNet's [3, 224, 224] at the default
 * MAX_BATCH_SIZE (4096) has I/O regions of 4096 rows × 602,112 bytes: its output region and every
 * thread's scratch (chunk buffers, convolution scratch, tap accumulators) start above 2^31, where
 * an offset taken as a signed int32 (`at >> 2` in JavaScript) is negative. The memory is reserved
 * whole but backed page by page as it is touched, so a call of a few rows uses a few MB of it: these
 * calls run every kernel on addresses above 2 GiB (the calling thread's and a helper's scratch),
 * and read the output, the softmax and the statistics back from there.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec, layerSchema } from '../../src/checkpoint/index.js';
import {
  compileNetwork,
  createExecutor,
  detectWasmSupport,
  type Executor,
  PlanExecutor,
  type StatisticsTap,
  tensorChannels,
  WasmExecutor,
} from '../../src/inference/index.js';
import { MAX_MEMORY_BYTES, planLayout } from '../../src/inference/wasm/memory-layout.js';
import { wasmUnsupportedReason } from '../../src/inference/wasm/wasm-executor.js';
import { BatchNorm, namedModules, Rng } from '../../src/nn/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';
import { expectClose } from '../helpers/compare.js';
import { FUSION_ATOL, STATS_RTOL } from '../helpers/tolerances.js';

prepareWasmRuntime();
const relaxedSimd = detectWasmSupport().relaxedSimd;
const { spawnHelper } = nodeEngineOptions({});
const TWO_GIB = 2 ** 31;
const MAX_BATCH_SIZE = 4096;

const spec = (value: unknown): LayerSpec => layerSchema.parse(value);
/** Convolution (padded: the plane is copied into the scratch), BatchNorm, both poolings, linear. */
const layers: LayerSpec[] = [
  spec({ type: 'conv2d', in_channels: 3, out_channels: 8, kernel_size: 3, stride: 2, padding: 1 }),
  spec({ type: 'batchnorm2d', num_features: 8 }),
  spec({ type: 'relu' }),
  spec({ type: 'maxpool2d', kernel_size: 2 }),
  spec({ type: 'conv2d', in_channels: 8, out_channels: 4, kernel_size: 3 }),
  spec({ type: 'gelu' }),
  spec({ type: 'adaptive_avgpool2d', output_size: 1 }),
  spec({ type: 'flatten' }),
  spec({ type: 'linear', in_features: 4, out_features: 10 }),
];

function network() {
  const rng = new Rng(11);
  const net = buildSequential(layers, { init: rng, dropout: rng });
  for (const [, m] of namedModules(net)) {
    if (!(m instanceof BatchNorm)) continue;
    for (let k = 0; k < m.numFeatures; k++) {
      m.runningMean.data[k] = rng.normal() * 0.2;
      m.runningVar.data[k] = 0.5 + rng.next();
    }
  }
  return net.eval();
}

const plan = compileNetwork(network(), undefined, [3, 224, 224]);
const rowsOf = (rows: number, seed: number) => {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * plan.inputWidth }, () => rng.uniform(0, 1));
};
const reference = new PlanExecutor(plan, 16);
const executors: Executor[] = [];
afterAll(() => {
  for (const e of executors) e.close();
});

describe('wasm engine memory above 2 GiB', () => {
  it('the layout of [3, 224, 224] at 4096 rows puts the output and the scratch above 2^31', () => {
    const layout = planLayout(plan, MAX_BATCH_SIZE, 2);
    expect(layout.input).toBeLessThan(TWO_GIB);
    expect(layout.output).toBeGreaterThan(TWO_GIB);
    for (const s of layout.scratch) expect(s).toBeGreaterThan(TWO_GIB);
    expect(layout.bytes).toBeLessThanOrEqual(2 ** 32);
  });

  describe('one thread: match the reference executor', () => {
    const wasm = new WasmExecutor(plan, { maxBatchSize: MAX_BATCH_SIZE, threads: 1, relaxedSimd });
    executors.push(wasm);
    const rows = 3;
    const x = rowsOf(rows, 5);
    const expected = reference.run(x, rows);

    it('outputs', () => {
      expectClose(wasm.run(x, rows), expected, FUSION_ATOL, 'logits');
    });

    it('softmax (through the scratch)', () => {
      expectClose(wasm.softmax(expected, rows, 10), reference.softmax(expected, rows, 10), 1e-6);
    });

    it('statistics (accumulators in the scratch)', () => {
      const channels = tensorChannels(plan);
      const taps: StatisticsTap[] = plan.steps.map((_, i) => ({
        step: i,
        point: 'output',
        channels: channels[i + 1]!,
      }));
      const mine = wasm.createProbe(taps);
      const theirs = reference.createProbe(taps);
      wasm.accumulate(x, rows, mine);
      reference.accumulate(x, rows, theirs);
      mine.sums.forEach((sums, i) => {
        const want = theirs.sums[i]!;
        expect(sums.count).toBe(want.count);
        for (let c = 0; c < sums.channels; c++) {
          const scale = Math.max(Math.abs(want.sumSquares[c]!), 1e-30);
          const sumError = Math.abs(sums.sum[c]! - want.sum[c]!) / Math.sqrt(scale * want.count);
          expect(sumError, `tap ${i} Σx[${c}]`).toBeLessThan(STATS_RTOL);
          const squaresError = Math.abs(sums.sumSquares[c]! - want.sumSquares[c]!) / scale;
          expect(squaresError, `tap ${i} Σx²[${c}]`).toBeLessThan(STATS_RTOL);
        }
      });
    });
  });

  it('a batch split with a helper thread (its scratch above 2 GiB too) gives the same bits', async () => {
    const one = new WasmExecutor(plan, { maxBatchSize: MAX_BATCH_SIZE, threads: 1, relaxedSimd });
    const two = new WasmExecutor(plan, {
      maxBatchSize: MAX_BATCH_SIZE,
      threads: 2,
      relaxedSimd,
      spawnHelper,
      parallelMinFlops: 0,
    });
    executors.push(one, two);
    await two.ready();
    expect(two.readyHelpers).toBe(1);
    const rows = 12;
    const x = rowsOf(rows, 7);
    const expected = one.run(x, rows);
    expectClose(expected, reference.run(x, rows), FUSION_ATOL, 'logits');
    const before = two.parallelCalls;
    const split = two.run(x, rows);
    expect(two.parallelCalls).toBe(before + 1);
    expect(Buffer.from(split.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
  });
});

describe('an input too wide for 4096 rows in 4 GiB', () => {
  // [3, 320, 320]: 4096 rows of input alone are 5 GiB. The executor used to refuse it with an
  // empty RangeError (the engine rule measured one row, the executor MAX_BATCH_SIZE rows).
  const wide = compileNetwork(
    buildSequential(layers.slice(0, 3).concat(layers.slice(6)), { init: new Rng(3) }).eval(),
    undefined,
    [3, 320, 320],
  );
  const wideReference = new PlanExecutor(wide, 4);

  it('passes as many rows as fit at a time, and no more', () => {
    const layout = planLayout(wide, MAX_BATCH_SIZE, 2);
    expect(layout.ioRows).toBeLessThan(MAX_BATCH_SIZE);
    expect(layout.bytes).toBeLessThanOrEqual(MAX_MEMORY_BYTES);
    // One row more would not fit: the memory's top is within a row of 4 GiB.
    const rowBytes = (wide.inputWidth + wide.outputWidth) * 4;
    expect(layout.bytes + rowBytes).toBeGreaterThan(MAX_MEMORY_BYTES);
    expect(wasmUnsupportedReason(wide, 2)).toBeUndefined();
  });

  it('runs on the wasm engine, its scratch just below 4 GiB, as the reference', () => {
    const reasons: string[] = [];
    const wasm = createExecutor(wide, {
      maxBatchSize: MAX_BATCH_SIZE,
      relaxedSimd,
      onFallback: (reason) => reasons.push(reason),
    });
    expect(reasons).toEqual([]);
    expect(wasm.engine).toBe('wasm');
    executors.push(wasm);
    const rows = 2;
    const x = Float32Array.from({ length: rows * wide.inputWidth }, (_, i) => (i % 251) / 251);
    const expected = wideReference.run(x, rows);
    expectClose(wasm.run(x, rows), expected, FUSION_ATOL, 'logits');
    expectClose(wasm.softmax(expected, rows, 10), wideReference.softmax(expected, rows, 10), 1e-6);
  });

  it('a model whose scratch fits once runs on one thread; one that never fits, on JavaScript', () => {
    // [1, S, S] → its mean: a row is S²·4 bytes, and each of a thread's two chunk buffers holds 4
    // rows of it. S = 8192: 2.25 GiB with one thread, 4.25 GiB with two. S = 16384: 9 GiB.
    const meanOf = (side: number) =>
      compileNetwork(
        buildSequential(
          [spec({ type: 'adaptive_avgpool2d', output_size: 1 }), spec({ type: 'flatten' })],
          { init: new Rng(4) },
        ).eval(),
        undefined,
        [1, side, side],
      );
    const build = (side: number) => {
      const reasons: string[] = [];
      const executor = createExecutor(meanOf(side), {
        maxBatchSize: MAX_BATCH_SIZE,
        threads: 2,
        spawnHelper,
        onFallback: (reason) => reasons.push(reason),
      });
      executors.push(executor);
      return { executor, reasons };
    };
    expect(wasmUnsupportedReason(meanOf(8192), 2)).toMatch(/pages of memory/);
    const once = build(8192);
    expect(once.executor.engine).toBe('wasm');
    expect((once.executor as WasmExecutor).threads).toBe(1);
    expect(once.reasons).toEqual([]);
    const never = build(16384);
    expect(never.executor.engine).toBe('js');
    expect(never.reasons).toEqual([
      expect.stringMatching(/^the model needs \d+ pages of memory \(limit 65536\)$/),
    ]);
  });
});
