import { finish, type Sliced } from '../nn/index.js';
import {
  detectWasmSupport,
  type WasmSupport,
  wasmRuntimeUnsupportedReason,
} from '../nn/wasm/index.js';
import type { EngineName } from './engine-name.js';
import type { Executor } from './executor.js';
import type { CompiledPlan } from './plan.js';
import { PlanExecutor } from './plan-executor.js';
import { executorThreads, type HelperSpawner } from './wasm/helper-pool.js';
import {
  type DenseAccumulation,
  WasmExecutor,
  wasmUnsupportedReason,
} from './wasm/wasm-executor.js';

export interface ExecutorOptions {
  /** The engine asked for (default wasm); the JS reference runs whatever wasm cannot. */
  engine?: EngineName | undefined;
  /** Largest batch expected per call (sizes buffers; larger batches still work). */
  maxBatchSize: number;
  /** Threads for large batches, the calling thread included (wasm only; default 1). */
  threads?: number | undefined;
  /** Starts helper threads (node: service/engine-runtime.ts); without it, one thread. */
  spawnHelper?: HelperSpawner | undefined;
  /**
   * How the wasm engine's dense steps add their products (default 'float32'; 'float64' for
   * statistics plans: see WasmExecutorOptions). The JavaScript executor always adds in float64.
   */
  denseAccumulation?: DenseAccumulation | undefined;
  /** Use relaxed SIMD's fused multiply-add when the runtime has it (default true). */
  relaxedSimd?: boolean | undefined;
  /** Told why the wasm engine was not used, when it was asked for. */
  onFallback?: ((reason: string) => void) | undefined;
  /** What the runtime supports; detected when not given (tests pass one to simulate a runtime). */
  support?: WasmSupport | undefined;
}

/**
 * The engine this runtime can run for `requested`: the WebAssembly engine falls back to the
 * JavaScript reference when the runtime lacks what it needs (`reason` says what). A process asks
 * once (the runtime is the same for every plan); creatingExecutor asks again per plan, for the
 * plan's own limits, and so serves callers that did not ask.
 */
export function resolveEngine(
  requested: EngineName,
  support: WasmSupport = detectWasmSupport(),
): { engine: EngineName; reason?: string } {
  if (requested !== 'wasm') return { engine: requested };
  const reason = wasmRuntimeUnsupportedReason(support);
  return reason === undefined ? { engine: 'wasm' } : { engine: 'js', reason };
}

/**
 * Builds the executor for a plan: the WebAssembly SIMD engine when asked for and able to run the
 * plan on this runtime, else the plain-JavaScript reference (and `onFallback` hears why).
 */
export function createExecutor(plan: CompiledPlan, options: ExecutorOptions): Executor {
  return finish(creatingExecutor(plan, options));
}

/**
 * createExecutor in slices (nn/slices.ts): the wasm engine's weights are packed into its memory,
 * and the JavaScript executor's copied to float64, a slice at a time.
 */
export function* creatingExecutor(plan: CompiledPlan, options: ExecutorOptions): Sliced<Executor> {
  if ((options.engine ?? 'wasm') === 'wasm') {
    const support = options.support ?? detectWasmSupport();
    // Each thread has its own scratch: fewer threads when that many do not fit in the memory.
    let threads = executorThreads(options.threads ?? 1, options.spawnHelper);
    while (threads > 1 && wasmUnsupportedReason(plan, threads, options.denseAccumulation))
      threads--;
    const reason =
      resolveEngine('wasm', support).reason ??
      wasmUnsupportedReason(plan, threads, options.denseAccumulation);
    if (reason === undefined) {
      return yield* WasmExecutor.building(plan, {
        maxBatchSize: options.maxBatchSize,
        threads,
        spawnHelper: options.spawnHelper,
        denseAccumulation: options.denseAccumulation,
        relaxedSimd: (options.relaxedSimd ?? true) && support.relaxedSimd,
      });
    }
    options.onFallback?.(reason);
  }
  return yield* PlanExecutor.building(plan, options.maxBatchSize);
}
