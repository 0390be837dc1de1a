import {
  applyFeatureTransform,
  type FeatureTransform,
  type Sequential,
  Tensor,
} from '../nn/index.js';
import { compileNetwork } from './compile.js';
import { createExecutor, type ExecutorOptions } from './create-executor.js';
import type { Executor } from './executor.js';
import type { CompiledPlan } from './plan.js';
import type { StatisticsProbe } from './statistics-probe.js';

/** How a CompiledModel runs its plan: createExecutor's options but the batch size. */
export type EngineOptions = Omit<ExecutorOptions, 'maxBatchSize'>;

/**
 * A network ready to serve: the fused plan (BatchNorm folded, dropout removed) run by an executor
 * (the WebAssembly engine by default, the JavaScript reference on request or as the fallback) for
 * normal requests, and the unfused eval path (the nn layers one by one) kept as the reference for
 * debugging and tests. Both are eval mode: no batch statistics, rows independent.
 */
export class CompiledModel {
  readonly plan: CompiledPlan;
  readonly executor: Executor;
  private readonly network: Sequential;
  private readonly inputTransform: FeatureTransform | undefined;

  constructor(
    network: Sequential,
    inputTransform: FeatureTransform | undefined,
    maxBatchSize: number,
    /** The shape of one sample, or its feature count for flat inputs (inferred when absent). */
    inputShape?: number | readonly number[],
    engine: EngineOptions = {},
  ) {
    this.network = network.eval();
    this.inputTransform = inputTransform;
    this.plan = compileNetwork(
      this.network,
      inputTransform,
      typeof inputShape === 'number' ? [inputShape] : inputShape,
    );
    this.executor = createExecutor(this.plan, { ...engine, maxBatchSize });
  }

  get inputWidth(): number {
    return this.plan.inputWidth;
  }

  /** The shape of one input sample ([F] or [C, H, W]); rows are passed flat, row-major. */
  get inputShape(): readonly number[] {
    return this.plan.inputShape;
  }

  get outputWidth(): number {
    return this.plan.outputWidth;
  }

  /**
   * Model outputs (logits for classification) for [rows, inputWidth] inputs (flat rows). A probe
   * (fused path only) gathers its taps' statistics during the same run (live drift statistics).
   */
  forward(input: Float32Array, rows: number, fused = true, probe?: StatisticsProbe): Float32Array {
    if (fused) return this.executor.run(input, rows, probe);
    return this.reference(input, rows);
  }

  /** The unfused eval path: input transform, then every layer's eval forward. */
  reference(input: Float32Array, rows: number): Float32Array {
    const x = applyFeatureTransform(
      input.subarray(0, rows * this.inputWidth),
      this.inputWidth,
      this.inputTransform,
    );
    const out = this.network.eval().forward(new Tensor(x, [rows, ...this.inputShape]));
    return out.data;
  }

  /** Releases the executor's threads (forward keeps working on the calling thread). */
  close(): void {
    this.executor.close();
  }
}
