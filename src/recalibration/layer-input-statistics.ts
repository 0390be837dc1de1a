import {
  type BatchNormInput,
  batchNormInputsOf,
  batchNormMoments,
  batchNormTaps,
  compileNetwork,
  createExecutor,
  type EngineOptions,
  type Executor,
  type FoldStatistics,
  type InputMoments,
  type StatisticsProbe,
} from '../inference/index.js';
import type { FeatureTransform, Sequential } from '../nn/index.js';
import type { BatchNormLayer } from './batch-norm-layers.js';

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
 * The inputs of one BatchNorm, read by the fast executor: the plan of everything before it (the
 * input transform and the earlier BatchNorms folded into the kernels, with the statistics they
 * have now, or those given), whose output is exactly the BatchNorm's input, on an executor with
 * one statistics tap on that output (src/inference/README.md, "Statistics"). Rows go in raw,
 * as uploaded; nothing but the executor's batch buffers holds activations.
 */
export class LayerInputStatistics {
  private readonly executor: Executor;
  private readonly probe: StatisticsProbe;
  private readonly input: BatchNormInput;

  constructor(
    private readonly source: PlanSource,
    readonly layer: BatchNormLayer,
    statistics?: ReadonlyMap<string, FoldStatistics>,
  ) {
    const plan = this.compile(statistics);
    // float64 sums in the dense steps too: the nn layers' arithmetic, which the statistics of
    // many rows would otherwise average float32 rounding into (WasmExecutorOptions).
    this.executor = createExecutor(plan, {
      ...source.engine,
      maxBatchSize: source.batchRows,
      denseAccumulation: 'float64',
    });
    [this.input] = batchNormInputsOf(plan, [layer.path]) as [BatchNormInput];
    this.probe = this.executor.createProbe(batchNormTaps([this.input]));
  }

  /** The engine that runs it ('wasm', or 'js' for steps the wasm engine has no kernel for). */
  get engine(): string {
    return this.executor.engine;
  }

  /** Count, mean and M2 per channel of the BatchNorm's inputs for `rows` raw rows. */
  measure(x: Float32Array, rows: number): InputMoments {
    this.probe.reset();
    this.executor.accumulate(x, rows, this.probe);
    return batchNormMoments(this.input, this.probe.sums[0]!);
  }

  /** Folds other statistics into the earlier BatchNorms (same plan structure, new numbers). */
  refold(statistics: ReadonlyMap<string, FoldStatistics>): void {
    this.executor.updateParameters(this.compile(statistics));
  }

  close(): void {
    this.executor.close();
  }

  private compile(statistics: ReadonlyMap<string, FoldStatistics> | undefined) {
    const { network, inputTransform, inputShape } = this.source;
    return compileNetwork(network, inputTransform, inputShape, {
      until: this.layer.path,
      statistics,
      foldBatchNorms: false,
    });
  }
}
