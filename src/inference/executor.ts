import type { EngineName } from './engine-name.js';
import type { CompiledPlan } from './plan.js';

/**
 * Runs a compiled plan: the seam between the plan (one intermediate form) and the engines. The
 * plain-JavaScript PlanExecutor is the reference and the fallback; WasmExecutor is the fast one.
 * Both are eval mode (no batch statistics), so rows are independent.
 */
export interface Executor {
  readonly engine: EngineName;
  readonly plan: CompiledPlan;
  /** Threads a large batch is split across (1: the calling thread only). */
  readonly threads: number;
  /**
   * The model's outputs [rows, outputWidth] for the first rows·inputWidth values of `input`
   * ([rows, inputWidth], row-major), in a new array. Synchronous; not re-entrant.
   */
  run(input: Float32Array, rows: number): Float32Array;
  /**
   * Releases what the executor holds beyond memory (its helper threads). Idempotent; `run` keeps
   * working on the calling thread afterwards.
   */
  close(): void;
}

/** Throws unless `rows` is a whole number ≥ 0 and `input` holds rows·inputWidth values. */
export function checkRunArguments(plan: CompiledPlan, input: Float32Array, rows: number): void {
  if (!Number.isInteger(rows) || rows < 0 || input.length < rows * plan.inputWidth) {
    throw new RangeError(
      `run(input, rows): rows must be a whole number ≥ 0 and input hold rows·${plan.inputWidth} values (rows ${rows}, input ${input.length})`,
    );
  }
}
