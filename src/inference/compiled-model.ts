import {
  applyFeatureTransform,
  type FeatureTransform,
  type Sequential,
  type Sliced,
  Tensor,
} from '../nn/index.js';
import { compileNetwork, compilingNetwork } from './compile.js';
import { createExecutor, creatingExecutor, type ExecutorOptions } from './create-executor.js';
import type { Executor } from './executor.js';
import type { CompiledPlan } from './plan.js';
import { planFlopsPerRow } from './plan-flops.js';
import type { StatisticsProbe, StatisticsTap } from './statistics-probe.js';
import { warmingUp } from './warm-up.js';

/**
 * Work of one slice of the unfused path (`referencing`), counted as the fused plan's flops per row
 * (planFlopsPerRow: the unfused layers do that work and the BatchNorms' few more). The nn layers
 * run in plain JavaScript at about 1 GFLOP/s on one core (bench/README.md, Engine: `unfused`,
 * digits 26,920 rows/s of 34,560 flops), so a slice is a few milliseconds: a server answering a
 * `?fused=false` request of 4,096 digits-cnn rows (3 s) keeps answering its other requests.
 */
export const REFERENCE_SLICE_FLOPS = 4e6;

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
    /** The shape of one sample (config.json's input_shape), or its feature count for flat inputs. */
    inputShape: number | readonly number[],
    engine: EngineOptions = {},
    /** The plan and executor `building` made (else compiled and built here, at once). */
    built?: { plan: CompiledPlan; executor: Executor },
  ) {
    this.network = network.eval();
    this.inputTransform = inputTransform;
    if (built) {
      this.plan = built.plan;
      this.executor = built.executor;
      return;
    }
    const shape = typeof inputShape === 'number' ? [inputShape] : inputShape;
    this.plan = compileNetwork(this.network, inputTransform, shape);
    this.executor = createExecutor(this.plan, { ...engine, maxBatchSize });
  }

  /**
   * The same CompiledModel built in slices (nn/slices.ts): the plan compiled and the executor's
   * weights written at most SLICE_VALUES values at a time. A server loads a version with
   * finishYielding(CompiledModel.building(…)), answering for its other versions meanwhile.
   */
  static *building(
    network: Sequential,
    inputTransform: FeatureTransform | undefined,
    maxBatchSize: number,
    inputShape: number | readonly number[],
    engine: EngineOptions = {},
  ): Sliced<CompiledModel> {
    const shape = typeof inputShape === 'number' ? [inputShape] : inputShape;
    const plan = yield* compilingNetwork(network.eval(), inputTransform, shape);
    const executor = yield* creatingExecutor(plan, { ...engine, maxBatchSize });
    return new CompiledModel(network, inputTransform, maxBatchSize, inputShape, engine, {
      plan,
      executor,
    });
  }

  /**
   * The executor's warm-up before it serves (warm-up.ts), on rows equal to the input transform's
   * shift — zero once transformed, the training features' mean where the shift is one, so every
   * value is in the range the weights were fitted to — else on zeros.
   */
  *warmingUp(taps?: readonly StatisticsTap[]): Sliced<void> {
    const row = new Float32Array(this.inputWidth);
    if (this.inputTransform) row.set(this.inputTransform.shift);
    yield* warmingUp(this.executor, row, taps);
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

  /**
   * The unfused eval path in slices of rows (REFERENCE_SLICE_FLOPS of work each), yielding
   * between them: rows are independent in eval mode, so the outputs are reference()'s bit for
   * bit. For a caller that must keep an event loop turning (finishYielding).
   */
  *referencing(input: Float32Array, rows: number): Sliced<Float32Array> {
    const width = this.inputWidth;
    const sliceRows = Math.max(1, Math.floor(REFERENCE_SLICE_FLOPS / planFlopsPerRow(this.plan)));
    if (rows <= sliceRows) return this.reference(input, rows);
    const outputs = new Float32Array(rows * this.outputWidth);
    for (let from = 0; from < rows; from += sliceRows) {
      const n = Math.min(sliceRows, rows - from);
      outputs.set(
        this.reference(input.subarray(from * width, (from + n) * width), n),
        from * this.outputWidth,
      );
      if (from + n < rows) yield;
    }
    return outputs;
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
