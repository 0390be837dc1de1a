import {
  type BatchNormInput,
  batchNormInputsOf,
  batchNormMoments,
  batchNormShift,
  batchNormTaps,
  ChannelSums,
  type CompiledPlan,
  centredPlan,
  compileNetwork,
  createExecutor,
  type EngineOptions,
  type Executor,
  type FoldStatistics,
  type InputMoments,
  inputTransformStep,
  planFlopsPerRow,
  type StatisticsProbe,
  type StatisticsTap,
} from '../inference/index.js';
import type { FeatureTransform, Sequential } from '../nn/index.js';
import type { BatchNormLayer } from './batch-norm-layers.js';
import { ChannelMoments } from './channel-moments.js';
import { PREFAULT_SLICE_BYTES, SYNC_SLICE_BUDGET_FLOPS } from './recalibration-options.js';

/** The network a recalibration compiles its prefix plans from. */
export interface PlanSource {
  network: Sequential;
  inputTransform: FeatureTransform | undefined;
  inputShape: readonly number[];
  engine: EngineOptions;
  /** Rows per executor call (sizes the executor's batch buffers). */
  batchRows: number;
}

/**
 * How a prefix plan adds its products: `float64` (the float64-accumulating GEMM, each output
 * rounded once: what the nn layers compute), `float32` (the fast float32 GEMM as it is), or
 * `centred` (the float32 GEMM, its first Linear on inputs centred at `centre`: centredPlan,
 * src/inference/centred-plan.ts).
 */
export type PrefixArithmetic =
  | { kind: 'float64' }
  | { kind: 'float32' }
  | { kind: 'centred'; centre: Float64Array };

/**
 * The inputs of one BatchNorm, read by the fast executor: the plan of everything before it (the
 * input transform and the earlier BatchNorms, each its own float64 affine step, with the
 * statistics they have now, or those given), whose output is exactly the BatchNorm's input, on
 * an executor with one statistics tap on that output (src/inference/README.md, "Statistics").
 * Rows go in raw, as uploaded; nothing but the executor's batch buffers holds activations.
 */
export class LayerInputStatistics {
  private readonly executor: Executor;
  private readonly probe: StatisticsProbe;
  private input: BatchNormInput;
  /** The tap of the plan's (transformed) input, when asked for: see centre(). */
  private readonly centreTap: StatisticsTap | undefined;
  /**
   * Per channel, the value the next rows' sums are taken about, in the BatchNorm's input units
   * (ChannelSums: a variance loses log10(1 + (mean − K)²/variance) digits to the sums' rounding
   * about K): the BatchNorm's running_mean at first, then the mean of the rows measured last.
   * Rows whose sums still lose more than ChannelSums.shiftTooFar allows — a running_mean far
   * from this data, and so the first rows of a shifted domain — are measured again about their
   * own mean (reshift), at the cost of one more pass over those rows only.
   */
  private readonly about: Float64Array;

  constructor(
    private readonly source: PlanSource,
    readonly layer: BatchNormLayer,
    statistics?: ReadonlyMap<string, FoldStatistics>,
    private readonly arithmetic: PrefixArithmetic = { kind: 'float64' },
    /** Also sum the plan's input after the input transform, per feature (centre()). */
    measureCentre = false,
  ) {
    const plan = this.compile(statistics);
    this.executor = createExecutor(plan, {
      ...source.engine,
      maxBatchSize: source.batchRows,
      denseAccumulation: arithmetic.kind === 'float64' ? 'float64' : 'float32',
    });
    [this.input] = batchNormInputsOf(plan, [layer.path]) as [BatchNormInput];
    // Helper threads (only where the engine options give them: the pass that overlaps an
    // upload) start now, while the first rows are read: started with the first call, they would
    // leave that call (a chunk of up to 4,096 rows) to the calling thread, a server's event loop.
    this.executor.startHelpers();
    this.centreTap = measureCentre ? transformedInputTap(plan) : undefined;
    this.probe = this.executor.createProbe([
      ...batchNormTaps([this.input]),
      ...(this.centreTap ? [this.centreTap] : []),
    ]);
    this.centreSums = this.centreTap ? new ChannelSums(this.centreTap.channels) : undefined;
    this.about = Float64Array.from(layer.bn.runningMean.data);
  }

  private readonly centreSums: ChannelSums | undefined;

  /** The engine that runs it ('wasm', or 'js' for steps the wasm engine has no kernel for). */
  get engine(): string {
    return this.executor.engine;
  }

  /**
   * Count, mean and M2 per channel of the BatchNorm's inputs for `rows` raw rows. With a centre
   * tap, `onNonFiniteInput` is called — before these rows count towards the centre — when a sum
   * of the plan's input is not finite, i.e. when some input value is not (or the input transform
   * overflowed float32); if it throws, nothing of these rows is kept.
   */
  measure(x: Float32Array, rows: number, onNonFiniteInput?: () => void): InputMoments {
    this.start();
    this.executor.accumulate(x, rows, this.probe);
    if (this.reshift()) this.executor.accumulate(x, rows, this.probe);
    return this.moments(onNonFiniteInput);
  }

  /** Empties the probe, its BatchNorm tap's sums to be taken about `about`. */
  private start(): void {
    this.probe.reset([batchNormShift(this.input, this.about)]);
  }

  /**
   * After a pass: true, with the probe emptied and its BatchNorm tap's shift set to these rows'
   * mean, when its sums were too far from it to meet M2_RELATIVE_TOLERANCE (ChannelSums.
   * shiftTooFar): the caller runs the same rows again.
   */
  private reshift(): boolean {
    const sums = this.probe.sums[0]!;
    if (!sums.shiftTooFar()) return false;
    this.probe.reset([sums.moments().mean]);
    return true;
  }

  /**
   * Rows per call of measureInSlices: as many as keep one call's work within
   * SYNC_SLICE_BUDGET_FLOPS (the plan's flops per row, planFlopsPerRow), at least one. It
   * depends on the plan's structure only, never on the engine or its threads, so every caller
   * (library, CLI, server) slices the same rows the same way and gets the same bits.
   */
  get sliceRows(): number {
    return sliceRowsFor(planFlopsPerRow(this.executor.plan));
  }

  /**
   * measure on the calling thread, in slices of sliceRows rows with `pause` awaited between
   * them, so that a long chunk never holds the thread (a server's event loop) for more than one
   * slice; the slices' moments merge with Chan's update (ChannelMoments), so the result differs
   * from one measure call only by float64 rounding. Rows that fit in one slice: measure's result
   * itself.
   */
  async measureInSlices(
    x: Float32Array,
    rows: number,
    pause: () => Promise<void>,
  ): Promise<InputMoments> {
    const step = this.sliceRows;
    // A slice measured again about its own mean (reshift) is a second slice of work: a pause first.
    const slice = async (part: Float32Array, n: number): Promise<InputMoments> => {
      this.start();
      this.executor.accumulate(part, n, this.probe);
      if (this.reshift()) {
        await pause();
        this.executor.accumulate(part, n, this.probe);
      }
      return this.moments(undefined);
    };
    if (rows <= step) return slice(x, rows);
    const merged = new ChannelMoments(this.input.channels);
    const width = this.executor.plan.inputWidth;
    for (let r = 0; r < rows; r += step) {
      if (r > 0) await pause();
      const n = Math.min(step, rows - r);
      merged.add(await slice(x.subarray(r * width, (r + n) * width), n));
    }
    return { count: merged.count, mean: merged.mean, m2: merged.m2 };
  }

  /**
   * Backs the executor memory a pass of `rows` rows writes, PREFAULT_SLICE_BYTES at a time with
   * `pause` awaited between, when that pass would run on the calling thread (no helper thread takes it): the
   * first such pass through a new executor otherwise pays a page fault per page of its buffers
   * in the same turn (a 4,096-row output region of 16 MiB for digits-cnn's first BatchNorm), on
   * top of the pass's own work. Changes nothing the executor computes.
   */
  async prefault(rows: number, pause: () => Promise<void>): Promise<void> {
    if (this.executor.offloads(rows)) return;
    while (this.executor.prefault(rows, PREFAULT_SLICE_BYTES)) await pause();
  }

  /**
   * measure, computed off the calling thread where the executor can (accumulateAsync: on its
   * helper thread, so that the event loop goes on reading the upload meanwhile). `x` must not
   * change, and no other measure of this object start, until the promise settles.
   */
  async measureAsync(
    x: Float32Array,
    rows: number,
    onNonFiniteInput?: () => void,
  ): Promise<InputMoments> {
    this.start();
    await this.executor.accumulateAsync(x, rows, this.probe);
    if (this.reshift()) await this.executor.accumulateAsync(x, rows, this.probe);
    return this.moments(onNonFiniteInput);
  }

  /** The moments of the rows the probe gathered since its reset (see measure). */
  private moments(onNonFiniteInput: (() => void) | undefined): InputMoments {
    const into = this.centreSums;
    if (into) {
      // Plain sums over every row measured: the centre needs only a few digits.
      const from = this.probe.sums[1]!;
      if (onNonFiniteInput) {
        // s·0 is 0 for a finite s and NaN otherwise (one pass over the few sums).
        let probe = 0;
        for (let i = 0; i < from.channels; i++) probe += from.sum[i]! * 0;
        if (probe !== 0) onNonFiniteInput();
      }
      into.count += from.count;
      // Σx = Σ(x − K) + n·K: the input tap shares the BatchNorm's sums, and shift, when the
      // BatchNorm reads the plan's input.
      for (let i = 0; i < into.channels; i++)
        into.sum[i] = into.sum[i]! + from.sum[i]! + from.count * from.shift[i]!;
    }
    const moments = batchNormMoments(this.input, this.probe.sums[0]!);
    moments.mean.forEach((m, c) => {
      if (Number.isFinite(m)) this.about[c] = m;
    });
    return moments;
  }

  /**
   * The mean of every row measured so far after the input transform, per feature, rounded to
   * float32 (so that the float64 rounding of sums taken in other chunks cannot move it): the
   * centre of the centred prefix plans of later BatchNorms (centredPlan). Needs measureCentre.
   */
  centre(): Float64Array {
    const sums = this.centreSums;
    if (!sums || sums.count === 0)
      throw new Error('centre(): no rows were measured with a centre tap');
    return sums.sum.map((s) => Math.fround(s / sums.count));
  }

  /** Folds other statistics into the earlier BatchNorms (same plan structure, new numbers). */
  refold(statistics: ReadonlyMap<string, FoldStatistics>): void {
    const plan = this.compile(statistics);
    [this.input] = batchNormInputsOf(plan, [this.layer.path]) as [BatchNormInput];
    this.executor.updateParameters(plan);
  }

  close(): void {
    this.executor.close();
  }

  private compile(statistics: ReadonlyMap<string, FoldStatistics> | undefined): CompiledPlan {
    const plan = prefixPlan(this.source, this.layer, statistics);
    if (this.arithmetic.kind !== 'centred') return plan;
    return centredPlan(plan, this.arithmetic.centre) ?? plan;
  }
}

/** Rows of one measureInSlices call for a plan of `flopsPerRow` (SYNC_SLICE_BUDGET_FLOPS). */
export function sliceRowsFor(flopsPerRow: number): number {
  return Math.max(1, Math.floor(SYNC_SLICE_BUDGET_FLOPS / flopsPerRow));
}

/** The plan of everything before `layer` (BatchNorms as their own float64 affine steps). */
function prefixPlan(
  source: PlanSource,
  layer: BatchNormLayer,
  statistics?: ReadonlyMap<string, FoldStatistics>,
): CompiledPlan {
  const { network, inputTransform, inputShape } = source;
  return compileNetwork(network, inputTransform, inputShape, {
    until: layer.path,
    statistics,
    foldBatchNorms: false,
  });
}

/**
 * The plan's input as its first Linear reads it, per feature: the input affine's output (the
 * input transform), or the raw input.
 */
function transformedInputTap(plan: CompiledPlan): StatisticsTap {
  const transformed = inputTransformStep(plan) !== undefined;
  return { step: transformed ? 0 : -1, point: 'output', channels: plan.inputWidth };
}
