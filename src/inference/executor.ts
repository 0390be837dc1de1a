import type { EngineName } from './engine-name.js';
import type { CompiledPlan } from './plan.js';
import type { StatisticsProbe, StatisticsTap } from './statistics-probe.js';

/**
 * Runs a compiled plan: the seam between the plan (one intermediate form) and the engines. The
 * plain-JavaScript PlanExecutor is the reference and the fallback; WasmExecutor is the fast one.
 * Both are eval mode (no batch statistics), so rows are independent.
 */
export interface Executor {
  readonly engine: EngineName;
  /** The plan it runs (replaced by updateParameters). */
  readonly plan: CompiledPlan;
  /** Threads a large batch is split across (1: the calling thread only). */
  readonly threads: number;
  /**
   * The most rows a warm-up call runs (warm-up.ts): WasmExecutor, the rows its chunk buffers hold
   * (the block every larger call goes through), fewer where that many would be split across
   * helper threads (which a warm-up must not start); PlanExecutor, 1 (its buffers are sized by
   * each call's rows, and kept).
   */
  readonly warmUpRows: number;
  /**
   * The model's outputs [rows, outputWidth] for the first rows·inputWidth values of `input`
   * ([rows, inputWidth], row-major), in a new array. Synchronous; not re-entrant. With a probe,
   * its taps' sums gather these rows too (see accumulate).
   */
  run(input: Float32Array, rows: number, probe?: StatisticsProbe): Float32Array;
  /**
   * Whether runAsync would compute `rows` rows off the calling thread: enough work to be worth a
   * hand-over (the executor's threshold, flops per row × rows) and a helper thread to take it.
   * Callers run the other calls with `run`, which costs no promise.
   */
  offloads(rows: number): boolean;
  /**
   * run's result, bit for bit, computed where the executor can without blocking the calling
   * thread (WasmExecutor: on its helper threads; otherwise synchronously, settled at once).
   * Calls are answered first in, first out; a `run` meanwhile is still correct. `input` must not
   * change until the promise settles.
   */
  runAsync(input: Float32Array, rows: number, probe?: StatisticsProbe): Promise<Float32Array>;
  /**
   * Statistics only: runs the plan's steps up to the last one a tap of `probe` reads (a prefix of
   * the plan; none for an input tap) on the rows and adds, per tap, Σx and Σx² per channel in
   * float64 into probe.sums, over the batch buffers as each chunk of rows leaves its step — no
   * output is written or returned. Rows are independent, so the sums do not depend on how a
   * caller batches its rows (up to float64 rounding).
   */
  accumulate(input: Float32Array, rows: number, probe: StatisticsProbe): void;
  /**
   * accumulate's sums, computed as runAsync computes (WasmExecutor: whole passes on a helper
   * thread, so the calling thread is free meanwhile; otherwise synchronously, settled at once),
   * through the steps accumulate runs, with nothing copied out. Queued with the runAsync calls, first in, first out. `input` must not
   * change, and the probe's sums must not be read, until the promise settles.
   */
  accumulateAsync(input: Float32Array, rows: number, probe: StatisticsProbe): Promise<void>;
  /**
   * The softmax of each row of `logits` ([rows, width], a classifier's outputs), in a new array:
   * PlanExecutor in float64 (nn's softmaxRows, the reference); WasmExecutor with the exponentials
   * in float32, as PyTorch computes them, and the sum and division in float64 (within a few float32
   * ulps of the reference). Synchronous.
   */
  softmax(logits: Float32Array, rows: number, width: number): Float32Array;
  /** Taps for run and accumulate, checked against the plan (RangeError), with zeroed sums. */
  createProbe(taps: readonly StatisticsTap[]): StatisticsProbe;
  /**
   * Loads the numbers of `plan`, which must have the same steps as the current one (ops, shapes,
   * activations): a plan compiled again after BatchNorm statistics changed. Cheaper than a new
   * executor (no memory, module or threads). Throws a RangeError when the structure differs.
   */
  updateParameters(plan: CompiledPlan): void;
  /**
   * Starts the helper threads now, if the executor has any to start, instead of with the first
   * call big enough to use them (whose rows run on the calling thread while they start): for a
   * caller that knows large asynchronous calls are coming. Does not wait for them; idempotent.
   */
  startHelpers(): void;
  /**
   * Makes the operating system back the next `maxBytes` of the memory a call of `rows` rows on
   * the calling thread will write (the rows of the first prefault call), without changing what it
   * holds (WasmExecutor: the first rows of its input and output regions and the calling thread's
   * scratch, an atomic add of zero per page, safe while a helper thread computes); true while
   * some remain. A new executor's first large call otherwise takes a page fault per page its
   * buffers first touch — for recalibration's first pass through a 4,096-row output region of
   * 16 MiB, on the calling thread — and a caller that must not hold its thread that long touches
   * them here in slices first. Only what those rows reach: an executor sized for 4,096 rows of a
   * wide feature map holds a gigabyte that a small upload never writes.
   * PlanExecutor: nothing to touch yet (its buffers are allocated by the first call of each size
   * class, which then takes their page faults itself), false.
   */
  prefault(rows: number, maxBytes: number): boolean;
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

/** The plan's steps with every array replaced by its length: equal for plans that differ only in numbers. */
export function planStructure(plan: CompiledPlan): string {
  return JSON.stringify(
    {
      inputShape: plan.inputShape,
      outputShape: plan.outputShape,
      maxWidth: plan.maxWidth,
      skipSlots: plan.skipSlots,
      views: plan.views,
      steps: plan.steps.map(({ layers: _, ...step }) => step),
    },
    (_key, value: unknown) =>
      ArrayBuffer.isView(value) ? { length: (value as Float32Array).length } : value,
  );
}

/** Throws unless `next` has the structure of `current` (Executor.updateParameters). */
export function checkSameStructure(current: CompiledPlan, next: CompiledPlan): void {
  if (planStructure(current) !== planStructure(next)) {
    throw new RangeError(
      'updateParameters(plan): the plan has different steps or shapes than the executor was built for; build a new executor',
    );
  }
}
