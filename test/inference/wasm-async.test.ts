/**
 * The asynchronous engine call (Executor.runAsync): the whole call runs on the helper thread while
 * the calling thread is free, with run's result bit for bit (statistics too); concurrent calls are
 * answered first in, first out, each with its own rows; a synchronous call during one is correct;
 * a helper that fails hands its rows back to the calling thread. Outcomes and order only.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential } from '../../src/checkpoint/index.js';
import {
  batchNormTaps,
  compileNetwork,
  detectWasmSupport,
  type HelperSpawner,
  PlanExecutor,
  WasmExecutor,
} from '../../src/inference/index.js';
import { eventLoopHolds } from '../../src/inference/wasm/event-loop-hold.js';
import { HELPER_STATE } from '../../src/inference/wasm/program-wat.js';
import { Rng } from '../../src/nn/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';
import { FLOAT64_REGROUP_RTOL } from '../helpers/tolerances.js';

prepareWasmRuntime();
const relaxedSimd = detectWasmSupport().relaxedSimd;
const { spawnHelper } = nodeEngineOptions({});

const network = buildSequential(
  [
    { type: 'linear', in_features: 50, out_features: 72, bias: true },
    {
      type: 'batchnorm1d',
      num_features: 72,
      eps: 1e-5,
      momentum: 0.1,
      affine: true,
      track_running_stats: true,
    },
    { type: 'relu' },
    { type: 'linear', in_features: 72, out_features: 33, bias: true },
    { type: 'gelu', approximate: 'none' },
    { type: 'linear', in_features: 33, out_features: 7, bias: true },
  ],
  { init: new Rng(2) },
).eval();
const plan = compileNetwork(network, undefined, [50]);

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const rowsOf = (rows: number, seed: number) => {
  const rng = new Rng(seed);
  return Float32Array.from({ length: rows * 50 }, () => rng.normal() * 4);
};
const one = new WasmExecutor(plan, { maxBatchSize: 1024, threads: 1, relaxedSimd });
const twoThreads = (extra: { spawnHelper?: HelperSpawner; maxBatchSize?: number } = {}) =>
  new WasmExecutor(plan, {
    maxBatchSize: extra.maxBatchSize ?? 1024,
    threads: 2,
    relaxedSimd,
    spawnHelper: extra.spawnHelper ?? spawnHelper,
    parallelMinFlops: 0,
  });

/** A "helper" on the main thread that says it is ready and fails on the first rows it is given. */
const failing: HelperSpawner = (init) => {
  const words = new Int32Array(init.memory.buffer);
  const c = init.control >> 2;
  Atomics.store(words, c + init.protocol.state, HELPER_STATE.ready);
  const seen = Atomics.load(words, c);
  const waited = Atomics.waitAsync(words, c, seen);
  void (waited.async ? waited.value : Promise.resolve()).then(() => {
    Atomics.store(words, c + init.protocol.state, init.protocol.failed);
    Atomics.store(words, c + init.protocol.done, -1);
    Atomics.notify(words, c + init.protocol.done);
  });
  return { terminate() {} };
};

describe('asynchronous engine calls', () => {
  it('run on the helper thread, bit-identical to run, passes of the I/O region included', async () => {
    const two = twoThreads({ maxBatchSize: 300 });
    try {
      await two.ready();
      expect(two.readyHelpers).toBe(1);
      for (const rows of [1, 7, 64, 299, 300, 301, 1000]) {
        const input = rowsOf(rows, rows);
        const before = two.offloadedCalls;
        const out = await two.runAsync(input, rows);
        expect(bits(out).equals(bits(one.run(input, rows))), `${rows} rows`).toBe(true);
        // One pass per 300 rows of the I/O region, each on the helper.
        expect(two.offloadedCalls - before, `${rows} rows`).toBe(Math.ceil(rows / 300));
      }
    } finally {
      two.close();
    }
  });

  it('startHelpers starts the helper without a call, so that the first large call runs on it', async () => {
    let spawned = 0;
    const counting: HelperSpawner = (init) => {
      spawned += 1;
      return spawnHelper!(init);
    };
    const two = twoThreads({ spawnHelper: counting });
    try {
      two.startHelpers();
      two.startHelpers();
      expect(spawned).toBe(1);
      // Generous bound: a worker thread's start on a busy machine.
      for (let waited = 0; two.readyHelpers === 0 && waited < 30_000; waited += 10)
        await new Promise((r) => setTimeout(r, 10));
      expect(two.readyHelpers).toBe(1);
      const input = rowsOf(64, 5);
      const out = await two.runAsync(input, 64);
      expect(two.offloadedCalls).toBe(1);
      expect(bits(out).equals(bits(one.run(input, 64)))).toBe(true);
    } finally {
      two.close();
    }
  });

  it('gather the same statistics as a synchronous run', async () => {
    const two = twoThreads();
    try {
      await two.ready();
      const taps = batchNormTaps(plan.batchNormInputs.filter((b) => b.tap !== undefined));
      const input = rowsOf(500, 9);
      const syncProbe = one.createProbe(taps);
      const asyncProbe = two.createProbe(taps);
      const expected = one.run(input, 500, syncProbe);
      expect(bits(await two.runAsync(input, 500, asyncProbe)).equals(bits(expected))).toBe(true);
      expect(asyncProbe.sums.length).toBeGreaterThan(0);
      // The helper runs the rows in the chunks the calling thread would: the same sums exactly.
      asyncProbe.sums.forEach((s, i) => {
        expect(s.count).toBe(syncProbe.sums[i]!.count);
        expect(Array.from(s.sum)).toEqual(Array.from(syncProbe.sums[i]!.sum));
        expect(Array.from(s.sumSquares)).toEqual(Array.from(syncProbe.sums[i]!.sumSquares));
      });
      // A probe of another executor is refused through the promise.
      await expect(two.runAsync(input, 500, syncProbe)).rejects.toThrow(RangeError);
    } finally {
      two.close();
    }
  });

  it('accumulateAsync gathers the statistics accumulate does, on the helper, in order with runAsync calls', async () => {
    const two = twoThreads({ maxBatchSize: 256 });
    try {
      const taps = batchNormTaps(plan.batchNormInputs.filter((b) => b.tap !== undefined));
      const syncOne = new WasmExecutor(plan, { maxBatchSize: 256, threads: 1, relaxedSimd });
      const a = rowsOf(200, 21); // one pass of the I/O region
      const b = rowsOf(700, 22); // three passes
      // Before the helper is ready, the call runs on the calling thread: the same sums.
      const early = two.createProbe(taps);
      const earlyReference = syncOne.createProbe(taps);
      await two.accumulateAsync(a, 200, early);
      syncOne.accumulate(a, 200, earlyReference);
      early.sums.forEach((s, i) => {
        expect(s.count).toBe(earlyReference.sums[i]!.count);
        expect(Array.from(s.sum)).toEqual(Array.from(earlyReference.sums[i]!.sum));
        expect(Array.from(s.sumSquares)).toEqual(Array.from(earlyReference.sums[i]!.sumSquares));
      });
      await two.ready();
      const probeA = two.createProbe(taps);
      const probeB = two.createProbe(taps);
      const order: string[] = [];
      const before = two.offloadedCalls;
      await Promise.all([
        two.accumulateAsync(a, 200, probeA).then(() => order.push('a')),
        two.runAsync(b, 700).then((out) => {
          expect(bits(out).equals(bits(one.run(b, 700)))).toBe(true);
          order.push('run');
        }),
        two.accumulateAsync(b, 700, probeB).then((v) => {
          expect(v).toBeUndefined();
          order.push('b');
        }),
      ]);
      expect(order).toEqual(['a', 'run', 'b']);
      // Every pass went to the helper: 1 + 3 + 3.
      expect(two.offloadedCalls - before).toBe(7);
      const referenceA = syncOne.createProbe(taps);
      syncOne.accumulate(a, 200, referenceA);
      // One pass: the same float64 additions, the same sums exactly.
      probeA.sums.forEach((s, i) => {
        expect(s.count).toBe(referenceA.sums[i]!.count);
        expect(Array.from(s.sum)).toEqual(Array.from(referenceA.sums[i]!.sum));
        expect(Array.from(s.sumSquares)).toEqual(Array.from(referenceA.sums[i]!.sumSquares));
      });
      // Three passes: each pass's sums are added to the probe in turn (accumulate adds them in
      // its accumulators first), so equal up to the regrouping of float64 additions.
      const referenceB = syncOne.createProbe(taps);
      syncOne.accumulate(b, 700, referenceB);
      probeB.sums.forEach((s, i) => {
        const r = referenceB.sums[i]!;
        expect(s.count).toBe(r.count);
        s.sum.forEach((v, k) => {
          const tolerance = FLOAT64_REGROUP_RTOL * Math.max(1, Math.abs(v));
          expect(Math.abs(v - r.sum[k]!)).toBeLessThanOrEqual(tolerance);
          expect(Math.abs(s.sumSquares[k]! - r.sumSquares[k]!)).toBeLessThanOrEqual(
            FLOAT64_REGROUP_RTOL * Math.max(1, s.sumSquares[k]!),
          );
        });
      });
      // A probe of another executor is refused through the promise.
      await expect(two.accumulateAsync(a, 200, referenceA)).rejects.toThrow(RangeError);
      syncOne.close();
    } finally {
      two.close();
    }
  });

  it('a probe read while a call that carries it is in flight counts every row once', async () => {
    const two = twoThreads({ maxBatchSize: 256 });
    try {
      await two.ready();
      const taps = batchNormTaps(plan.batchNormInputs.filter((b) => b.tap !== undefined));
      const a = rowsOf(400, 11);
      const b = rowsOf(200, 12);
      const probe = two.createProbe(taps);
      const reference = one.createProbe(taps);
      one.run(a, 400, reference);
      one.run(b, 200, reference);
      const pending = [two.runAsync(a, 400, probe), two.runAsync(b, 200, probe)];
      // Reading the sums now ends the pass in flight first (the helper may be adding to them).
      const early = probe.sums[0]!.count;
      expect(early).toBeLessThanOrEqual(600);
      await Promise.all(pending);
      probe.sums.forEach((s, i) => {
        expect(s.count).toBe(reference.sums[i]!.count);
        s.sum.forEach((v, k) => {
          expect(Math.abs(v - reference.sums[i]!.sum[k]!)).toBeLessThanOrEqual(
            FLOAT64_REGROUP_RTOL * Math.max(1, Math.abs(v)),
          );
        });
      });
    } finally {
      two.close();
    }
  });

  it('answer concurrent calls first in, first out, each with its own rows', async () => {
    const two = twoThreads({ maxBatchSize: 128 });
    try {
      await two.ready();
      const sizes = [200, 3, 128, 50, 129, 1, 77];
      const inputs = sizes.map((rows, i) => rowsOf(rows, 100 + i));
      const order: number[] = [];
      const outs = await Promise.all(
        sizes.map((rows, i) =>
          two.runAsync(inputs[i]!, rows).then((out) => {
            order.push(i);
            return out;
          }),
        ),
      );
      expect(order).toEqual(sizes.map((_, i) => i));
      outs.forEach((out, i) => {
        expect(bits(out).equals(bits(one.run(inputs[i]!, sizes[i]!))), `call ${i}`).toBe(true);
      });
      expect(two.offloadedCalls).toBeGreaterThanOrEqual(sizes.length);
    } finally {
      two.close();
    }
  });

  it('a synchronous call while asynchronous ones are queued and in flight is correct, and so are they', async () => {
    const two = twoThreads({ maxBatchSize: 256 });
    try {
      await two.ready();
      const a = rowsOf(600, 1); // three passes
      const b = rowsOf(256, 2);
      const c = rowsOf(40, 3);
      const pending = [two.runAsync(a, 600), two.runAsync(b, 256)];
      // A pass of `a` is in flight on the helper now; the synchronous call ends it first.
      const now = two.run(c, 40);
      expect(bits(now).equals(bits(one.run(c, 40)))).toBe(true);
      const [outA, outB] = await Promise.all(pending);
      expect(bits(outA!).equals(bits(one.run(a, 600)))).toBe(true);
      expect(bits(outB!).equals(bits(one.run(b, 256)))).toBe(true);
      // And the executor goes on asynchronously afterwards.
      const before = two.offloadedCalls;
      expect(bits(await two.runAsync(c, 40)).equals(bits(one.run(c, 40)))).toBe(true);
      expect(two.offloadedCalls).toBe(before + 1);
    } finally {
      two.close();
    }
  });

  it('calls made before updateParameters or close are answered as they were made', async () => {
    const two = twoThreads({ maxBatchSize: 256 });
    await two.ready();
    const a = rowsOf(300, 4);
    const first = two.runAsync(a, 300);
    const second = two.runAsync(a, 300);
    const other = compileNetwork(
      buildSequential(
        [
          { type: 'linear', in_features: 50, out_features: 72, bias: true },
          {
            type: 'batchnorm1d',
            num_features: 72,
            eps: 1e-5,
            momentum: 0.1,
            affine: true,
            track_running_stats: true,
          },
          { type: 'relu' },
          { type: 'linear', in_features: 72, out_features: 33, bias: true },
          { type: 'gelu', approximate: 'none' },
          { type: 'linear', in_features: 33, out_features: 7, bias: true },
        ],
        { init: new Rng(3) },
      ).eval(),
      undefined,
      [50],
    );
    two.updateParameters(other);
    const expected = one.run(a, 300);
    expect(bits(await first).equals(bits(expected))).toBe(true);
    expect(bits(await second).equals(bits(expected))).toBe(true);
    const third = two.runAsync(a, 300);
    two.close();
    const reference = new WasmExecutor(other, { maxBatchSize: 1024, threads: 1, relaxedSimd });
    expect(bits(await third).equals(bits(reference.run(a, 300)))).toBe(true);
    expect(bits(await two.runAsync(a, 300)).equals(bits(reference.run(a, 300)))).toBe(true);
  });

  it('hold the event loop while a pass is in flight, released by every end of a pass', async () => {
    // event-loop-hold.ts: one hold per pass in flight, across executors; none once all is done.
    const x = twoThreads({ maxBatchSize: 256 });
    const y = twoThreads({ maxBatchSize: 256 });
    const failed = twoThreads({ spawnHelper: failing });
    await Promise.all([x.ready(), y.ready(), failed.ready()]);
    const a = rowsOf(600, 7);
    const start = eventLoopHolds();
    const calls = [x.runAsync(a, 600), x.runAsync(a, 256), y.runAsync(a, 600)];
    expect(eventLoopHolds()).toBe(start + 2); // one pass each of x and y
    x.run(a, 40); // ends x's pass here (drain); its queue goes on
    const lost = failed.runAsync(a, 300); // its helper fails: the rows come back here
    await Promise.all([...calls, lost]);
    const last = y.runAsync(a, 600);
    y.close(); // ends the pass in flight
    await last;
    x.close();
    failed.close();
    expect(eventLoopHolds()).toBe(start);
  });

  it('a helper that fails hands its rows back: the call runs on the calling thread', async () => {
    const two = twoThreads({ spawnHelper: failing });
    await two.ready();
    expect(two.readyHelpers).toBe(1);
    const input = rowsOf(333, 5);
    const taps = batchNormTaps(plan.batchNormInputs.filter((b) => b.tap !== undefined));
    const probe = two.createProbe(taps);
    const reference = one.createProbe(taps);
    const out = await two.runAsync(input, 333, probe);
    expect(bits(out).equals(bits(one.run(input, 333, reference)))).toBe(true);
    expect(two.offloadedCalls).toBe(1);
    // The failed helper is gone; later calls run here, and answer the same.
    expect(two.readyHelpers).toBe(0);
    expect(two.offloads(333)).toBe(false);
    expect(bits(await two.runAsync(input, 333)).equals(bits(out))).toBe(true);
    expect(two.offloadedCalls).toBe(1);
    // The statistics count the rows once (the helper's accumulators are cleared).
    probe.sums.forEach((s, i) => {
      expect(s.count).toBe(reference.sums[i]!.count);
      expect(Array.from(s.sum)).toEqual(Array.from(reference.sums[i]!.sum));
    });
    two.close();
  });

  it('a share a helper never starts is taken back once the calling thread is free', async () => {
    // Ready, and then never runs: a helper waiting for a core on a busy machine, at worst.
    const stalled: HelperSpawner = (init) => {
      Atomics.store(
        new Int32Array(init.memory.buffer),
        (init.control >> 2) + init.protocol.state,
        HELPER_STATE.ready,
      );
      return { terminate() {} };
    };
    const two = twoThreads({ spawnHelper: stalled, maxBatchSize: 128 });
    await two.ready();
    const input = rowsOf(300, 8);
    const out = await two.runAsync(input, 300);
    expect(bits(out).equals(bits(one.run(input, 300)))).toBe(true);
    // Three passes, each posted and taken back; the helper stays (it is alive, only late).
    expect(two.offloadedCalls).toBe(3);
    expect(two.revokedShares).toBe(3);
    expect(two.readyHelpers).toBe(1);
    two.close();
  });

  it('small calls and executors without helpers stay synchronous; the JavaScript executor resolves run', async () => {
    const two = new WasmExecutor(plan, {
      maxBatchSize: 512,
      threads: 2,
      relaxedSimd,
      spawnHelper,
      parallelMinFlops: 2e6, // ~13 k flops per row: 32 rows below, 512 above
    });
    expect(two.offloads(32)).toBe(false);
    expect(two.offloads(512)).toBe(true);
    expect(one.offloads(512)).toBe(false);
    const js = new PlanExecutor(plan, 512);
    expect(js.offloads(512)).toBe(false);
    const input = rowsOf(512, 6);
    expect(bits(await js.runAsync(input, 512)).equals(bits(js.run(input, 512)))).toBe(true);
    await expect(js.runAsync(input, 513)).rejects.toThrow(RangeError);
    // The first big call starts the helper and, with none ready yet, runs here.
    expect(bits(await two.runAsync(input, 512)).equals(bits(one.run(input, 512)))).toBe(true);
    two.close();
  });
});
