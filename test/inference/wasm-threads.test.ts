/**
 * Both cores: a batch split by rows between the calling thread and a helper thread (worker_threads,
 * one shared WebAssembly memory) gives the single-thread result bit for bit; a helper that does not
 * start its share (no free core) never holds the call up: the caller takes the share back; helpers
 * stop with close() and never keep a process alive.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { buildSequential } from '../../src/checkpoint/index.js';
import {
  compileNetwork,
  detectWasmSupport,
  type HelperSpawner,
  WasmExecutor,
} from '../../src/inference/index.js';
import { CONTROL, DONE, HELPER_STATE } from '../../src/inference/wasm/program-wat.js';
import { Rng } from '../../src/nn/index.js';
import { loadModelDirectory } from '../../src/repository/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../../src/service/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { makeTempDir, removeTempDirs, writeTempFile } from '../helpers/temp-files.js';

const run = promisify(execFile);
afterAll(removeTempDirs);
prepareWasmRuntime();
const relaxedSimd = detectWasmSupport().relaxedSimd;
const { spawnHelper } = nodeEngineOptions({});

const plan = compileNetwork(
  buildSequential(
    [
      { type: 'linear', in_features: 50, out_features: 72, bias: true },
      { type: 'gelu', approximate: 'none' },
      { type: 'layernorm', normalized_shape: [72], eps: 1e-5, elementwise_affine: true },
      { type: 'linear', in_features: 72, out_features: 33, bias: true },
      { type: 'relu' },
      { type: 'linear', in_features: 33, out_features: 7, bias: true },
    ],
    { init: new Rng(2) },
  ).eval(),
  undefined,
  [50],
);

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('helper threads', () => {
  it('split batches are bit-identical to one thread, at every split point', async () => {
    const one = new WasmExecutor(plan, { maxBatchSize: 1024, threads: 1, relaxedSimd });
    const two = new WasmExecutor(plan, {
      maxBatchSize: 1024,
      threads: 2,
      relaxedSimd,
      spawnHelper,
      parallelMinFlops: 0,
    });
    try {
      await two.ready();
      expect(two.readyHelpers).toBe(1);
      const rng = new Rng(4);
      let split = 0;
      for (const rows of [8, 9, 10, 11, 12, 13, 63, 64, 65, 333, 1024, 2500]) {
        const input = Float32Array.from({ length: rows * 50 }, () => rng.normal() * 4);
        const expected = one.run(input, rows);
        const before = two.parallelCalls;
        expect(bits(two.run(input, rows)).equals(bits(expected)), `${rows} rows`).toBe(true);
        split += two.parallelCalls - before;
      }
      expect(split).toBeGreaterThanOrEqual(12); // every call (and each 1024-row pass) was split
    } finally {
      two.close();
    }
  });

  it('the convolutional network too: conv, pooling and skips split bit-identically', async () => {
    const { checkpoint } = await loadModelDirectory(bundledVersionDir('digits-cnn'));
    const cnn = compileNetwork(
      checkpoint.network,
      checkpoint.config.input_transform,
      checkpoint.config.input_shape,
    );
    const one = new WasmExecutor(cnn, { maxBatchSize: 512, threads: 1, relaxedSimd });
    const two = new WasmExecutor(cnn, {
      maxBatchSize: 512,
      threads: 2,
      relaxedSimd,
      spawnHelper,
      parallelMinFlops: 0,
    });
    try {
      await two.ready();
      const rng = new Rng(6);
      for (const rows of [8, 9, 37, 300, 700]) {
        const input = Float32Array.from({ length: rows * 64 }, () => rng.uniform(0, 16));
        const before = two.parallelCalls;
        expect(bits(two.run(input, rows)).equals(bits(one.run(input, rows))), `${rows} rows`).toBe(
          true,
        );
        expect(two.parallelCalls).toBeGreaterThan(before);
      }
    } finally {
      two.close();
    }
  });

  it('a helper that never starts its share does not hold the call: the caller runs it', () => {
    // A "helper" that announces itself ready and then never runs: the worst case of a helper
    // thread waiting for a core on a busy machine.
    const stalled: HelperSpawner = (init) => {
      Atomics.store(
        new Int32Array(init.memory.buffer),
        (init.control >> 2) + init.protocol.state,
        HELPER_STATE.ready,
      );
      return { terminate() {} };
    };
    const one = new WasmExecutor(plan, { maxBatchSize: 512, threads: 1, relaxedSimd });
    const two = new WasmExecutor(plan, {
      maxBatchSize: 512,
      threads: 2,
      relaxedSimd,
      spawnHelper: stalled,
      parallelMinFlops: 0,
    });
    // Helpers start with the first batch worth splitting, not with the executor (a model's load).
    expect(two.readyHelpers).toBe(0);
    const rng = new Rng(7);
    for (const rows of [8, 65, 512]) {
      const input = Float32Array.from({ length: rows * 50 }, () => rng.normal() * 4);
      expect(bits(two.run(input, rows)).equals(bits(one.run(input, rows))), `${rows} rows`).toBe(
        true,
      );
    }
    expect(two.readyHelpers).toBe(1);
    expect(two.parallelCalls).toBe(3);
    expect(two.revokedShares).toBe(3);
    two.close();
  });

  it('a helper that dies in a chunk it claimed: that chunk runs again on the caller', async () => {
    // A "helper" thread that claims its share and one chunk from the row cursor, then dies
    // without computing it (the failure words, as the engine's helper writes them when serve
    // throws) and reports the chunk's first row. The output region still holds the previous
    // call's values for those rows. On a busy machine the caller may run every chunk before the
    // helper wakes (it then reports a row past the end): such a try says nothing and is repeated.
    const dying: HelperSpawner & { claimed: number[] } = Object.assign(
      (init: Parameters<HelperSpawner>[0]) => {
        const worker = new Worker(
          `const { workerData: d, parentPort } = require('node:worker_threads');
          const w = new Int32Array(d.memory.buffer);
          const c = d.control >> 2;
          const seen = Atomics.load(w, c + d.C.seq);
          Atomics.store(w, c + d.C.state, d.ready);
          Atomics.wait(w, c + d.C.seq, seen);
          let r = -1;
          if (Atomics.compareExchange(w, c + d.C.done, d.posted, d.claimed) === d.posted) {
            r = Atomics.add(w, Atomics.load(w, c + d.C.cursorAt) >> 2, Atomics.load(w, c + d.C.chunk));
            Atomics.store(w, c + d.C.current, r);
          }
          Atomics.store(w, c + d.C.state, d.failed);
          Atomics.store(w, c + d.C.done, -1);
          Atomics.notify(w, c + d.C.done);
          parentPort.postMessage(r);`,
          {
            eval: true,
            workerData: {
              memory: init.memory,
              control: init.control,
              C: CONTROL,
              ready: HELPER_STATE.ready,
              failed: HELPER_STATE.failed,
              posted: DONE.posted,
              claimed: DONE.claimed,
            },
          },
        );
        worker.on('message', (r: number) => dying.claimed.push(r));
        return { terminate: () => void worker.terminate() };
      },
      { claimed: [] as number[] },
    );
    const rows = 4096;
    const one = new WasmExecutor(plan, { maxBatchSize: rows, threads: 1, relaxedSimd });
    const rng = new Rng(11);
    let rerun = false;
    for (let attempt = 0; attempt < 20 && !rerun; attempt++) {
      const two = new WasmExecutor(plan, {
        maxBatchSize: rows,
        threads: 2,
        relaxedSimd,
        spawnHelper: dying,
        parallelMinFlops: 0,
      });
      try {
        const before = dying.claimed.length;
        const first = Float32Array.from({ length: rows * 50 }, () => rng.normal());
        two.run(first, rows); // starts the helper; runs here
        await two.ready();
        const input = Float32Array.from({ length: rows * 50 }, () => rng.normal() * 3);
        expect(bits(two.run(input, rows)).equals(bits(one.run(input, rows)))).toBe(true);
        for (let i = 0; i < 1000 && dying.claimed.length === before; i++)
          await new Promise((r) => setTimeout(r, 10));
        expect(dying.claimed.length).toBe(before + 1);
        expect(two.readyHelpers).toBe(0); // the dead helper is not used again
        const r = dying.claimed[before]!;
        rerun = r >= 0 && r < rows;
      } finally {
        two.close();
      }
    }
    // At least one try had the helper claim a chunk it never computed, and the answer was still
    // the one-thread answer.
    expect(rerun).toBe(true);
  });

  it('helpers are spawned on the first batch worth splitting, once, and never for small ones', () => {
    let spawned = 0;
    const counting: HelperSpawner = (init) => {
      spawned++;
      Atomics.store(
        new Int32Array(init.memory.buffer),
        (init.control >> 2) + init.protocol.state,
        HELPER_STATE.ready,
      );
      return { terminate() {} };
    };
    const two = new WasmExecutor(plan, {
      maxBatchSize: 512,
      threads: 2,
      relaxedSimd,
      spawnHelper: counting,
      parallelMinFlops: 2e6, // 32 rows of this plan (~13 k flops each) are below it, 512 above
    });
    const input = Float32Array.from({ length: 512 * 50 }, (_, i) => Math.cos(i));
    two.run(input, 4);
    two.run(input, 32);
    expect(spawned).toBe(0);
    two.run(input, 512);
    two.run(input, 512);
    expect(spawned).toBe(1);
    two.close();
    two.run(input, 512);
    expect(spawned).toBe(1);
  });

  it('close() stops the helpers; the executor keeps working on the calling thread', async () => {
    const two = new WasmExecutor(plan, {
      maxBatchSize: 256,
      threads: 2,
      relaxedSimd,
      spawnHelper,
      parallelMinFlops: 0,
    });
    await two.ready();
    const input = Float32Array.from({ length: 256 * 50 }, (_, i) => Math.sin(i));
    const before = two.run(input, 256);
    two.close();
    two.close();
    expect(two.readyHelpers).toBe(0);
    const calls = two.parallelCalls;
    expect(bits(two.run(input, 256)).equals(bits(before))).toBe(true);
    expect(two.parallelCalls).toBe(calls);
  });

  it('an idle pool does not keep a process alive: a script that never calls close() exits', async () => {
    const dir = makeTempDir('threads-exit');
    const script = writeTempFile(
      dir,
      'never-closes.mts',
      `import { loadModel } from ${JSON.stringify(resolve('src/index.ts'))};
const model = await loadModel(${JSON.stringify(resolve(bundledVersionDir('digits')))}, { threads: 2 });
const out = model.run(new Float32Array(4096 * 64).fill(3), 4096);
console.log(model.engine, out.length);
`,
    );
    const { stdout } = await run(process.execPath, ['--import', 'tsx', script], {
      timeout: 120_000,
    });
    expect(stdout.trim()).toBe('wasm 40960');
  });
});
