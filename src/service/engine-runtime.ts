import { setFlagsFromString } from 'node:v8';
import { Worker } from 'node:worker_threads';
import {
  detectWasmSupport,
  type EngineOptions,
  type HelperInit,
  type HelperSpawner,
} from '../inference/index.js';
import { processCpus } from './available-cpus.js';

/**
 * Node's side of the WebAssembly engine, which itself runs anywhere: V8 flags (relaxed SIMD, which
 * V8 ships from 11.4, is behind a flag on Node 20's 11.3; eager optimizing compilation), and helper
 * threads (worker_threads) for big batches.
 */

let prepared = false;

/**
 * Prepares V8 for the engine, once, before the engine module is compiled (i.e. before the first
 * model loads): relaxed SIMD on where the runtime has it behind a flag (fused multiply-add in the
 * GEMM), and WebAssembly compiled by the optimizing compiler (--no-wasm-dynamic-tiering) rather
 * than first by the baseline compiler, whose SIMD code runs 3–5× slower and which stays in use
 * until a background recompilation — slow to come on a busy machine — replaces it. V8 compiles
 * each function at its first call (lazy compilation, its default on Node 20): a few milliseconds
 * of the first call of each engine variant, once per process, which the registry's warm-up of a
 * version takes before the version serves (inference/warm-up.ts).
 */
export function prepareWasmRuntime(): void {
  if (prepared) return;
  prepared = true;
  const flags = ['--no-wasm-dynamic-tiering'];
  if (!detectWasmSupport().relaxedSimd) flags.push('--experimental-wasm-relaxed-simd');
  for (const flag of flags) {
    try {
      setFlagsFromString(flag);
    } catch {
      // An engine without the flag: its default (the GEMM without FMA, or tiered compilation).
    }
  }
}

/**
 * A helper thread's whole program: instantiate the engine on the shared memory and serve rows
 * until told to stop. Plain JavaScript evaluated in the worker, so it runs the same from the
 * TypeScript sources (tsx, vitest) and from dist/. If serve throws, the failure words tell the
 * calling thread (blocked on them) to take the rows back.
 */
const HELPER_SOURCE = `
const { workerData: d } = require('node:worker_threads');
const words = new Int32Array(d.memory.buffer, d.control, 16);
try {
  const { exports } = new WebAssembly.Instance(d.module, { env: { memory: d.memory } });
  exports.serve(d.control, d.program, d.input, d.output, d.scratch);
} catch (e) {
  Atomics.store(words, d.protocol.state, d.protocol.failed);
  Atomics.store(words, d.protocol.done, -1);
  Atomics.notify(words, d.protocol.done);
  throw e;
}`;

/**
 * Starts a helper thread. It is unref'd — an idle helper never keeps the process alive; a pass
 * of an asynchronous call in flight holds the event loop itself (inference/wasm/event-loop-hold.ts)
 * — and ended by the executor's close() (with its model version).
 */
export function spawnEngineHelper(
  init: HelperInit,
  onError: (err: unknown) => void = () => {},
): { terminate(): void } {
  const worker = new Worker(HELPER_SOURCE, {
    eval: true,
    workerData: init,
    // Helpers run only the engine: a small heap, no stdin.
    resourceLimits: { maxOldGenerationSizeMb: 32 },
    stdin: false,
  });
  worker.unref();
  worker.on('error', onError);
  return {
    terminate: () => {
      void worker.terminate();
    },
  };
}

/**
 * Threads per process for one batch by default: the CPUs each of `workers` processes gets, of
 * those the process may use, its cgroup's CPU limit included (available-cpus.ts).
 */
export const defaultEngineThreads = (workers: number, cpus: number = processCpus()): number =>
  Math.max(1, Math.floor(cpus / workers));

/** The engine options the service uses: relaxed SIMD on, helper threads through worker_threads. */
export function nodeEngineOptions(
  options: EngineOptions & { onHelperError?: (err: unknown) => void },
): EngineOptions {
  prepareWasmRuntime();
  const { onHelperError, ...rest } = options;
  const spawnHelper: HelperSpawner = (init) => spawnEngineHelper(init, onHelperError);
  return { spawnHelper, ...rest };
}
