import type { FeatureTransform, Sequential } from '../nn/index.js';
import type { BatchNormLayer } from './batch-norm-layers.js';
import { ChannelMoments } from './channel-moments.js';
import { LayerInputStatistics, type PrefixArithmetic } from './layer-input-statistics.js';
import { blendStatistics } from './prior-blend.js';
import type { ResolvedOptions } from './recalibration-options.js';
import { MemoryRowStore, type RowStore } from './row-store.js';
import { checkFiniteRows } from './row-validation.js';
import { type ModeResult, StreamingRecalibrator } from './streaming-recalibrator.js';

/**
 * `exact` and `prior` mode, layer by layer in network order (AdaBN, Li et al. 2016): BatchNorm k
 * gets the mean and unbiased variance (÷(n − 1), PyTorch's running_var convention) of its inputs
 * over all n rows — per channel over N·H·W values for a BatchNorm2d, n = N·H·W — with every
 * earlier layer in eval mode (Dropout off) and earlier BatchNorms already recalibrated, those
 * inside residual blocks included. `prior` blends each target estimate with the source statistics
 * (blendStatistics) before moving on, so later layers see the blended earlier ones.
 *
 * BatchNorm k's inputs are read by the fast executor (LayerInputStatistics): the compiled plan of
 * everything before it, earlier BatchNorms folded with their new statistics, a chunk of rows per
 * call (later BatchNorms: a slice of a chunk whose work is bounded, SYNC_SLICE_BUDGET_FLOPS), the
 * per-channel sums taken in float64 inside the executor; each call's moments merge
 * into ChannelMoments (Chan's pairwise update) and the result is stored rounded to float32. The
 * input of BatchNorm k depends on the new statistics of BatchNorm k − 1, so the rows are kept
 * (a RowStore) and run again for each later BatchNorm; the first BatchNorm's statistics are
 * gathered as rows arrive.
 *
 * num_batches_tracked is left unchanged: it counts the optimizer steps that trained the source
 * model, eval never reads it, and nothing here is a training step.
 */
export class LayerwiseRecalibrator extends StreamingRecalibrator {
  private readonly store: RowStore;
  private readonly first: ChannelMoments;
  private readonly firstInputs: LayerInputStatistics;
  private readonly flat: boolean;
  /** Whether the first pass's executor memory is backed yet (prefault, before the first chunk). */
  private prefaulted = false;

  constructor(
    network: Sequential,
    inputTransform: FeatureTransform | undefined,
    inputShape: readonly number[],
    options: ResolvedOptions,
    layers: readonly BatchNormLayer[],
  ) {
    super(network, inputTransform, inputShape, options, layers, options.chunkRows);
    const blockRows = options.chunkRows;
    this.store =
      options.rowStore?.(this.inputWidth, blockRows) ??
      new MemoryRowStore(this.inputWidth, blockRows);
    this.first = new ChannelMoments(layers[0]!.bn.numFeatures);
    // Flat rows: the fast float32 GEMM, and the transformed input's mean for the centred plans
    // of the later BatchNorms (compute). Convolutional networks keep the float64 dense steps.
    this.flat = inputShape.length === 1;
    this.firstInputs = new LayerInputStatistics(
      this.source,
      layers[0]!,
      undefined,
      { kind: this.flat ? 'float32' : 'float64' },
      this.flat,
    );
  }

  /**
   * Flat rows: the first plan's input tap sums every value of every row (after the input
   * transform), and a sum is finite only if every value in it is (float64 sums of float32 values
   * cannot overflow): push() leaves the finiteness check to that pass, which saves reading each
   * upload once more (bench/README.md, "Recalibration", third round).
   */
  protected override get checksFinite(): boolean {
    return this.flat;
  }

  protected async consume(
    x: Float32Array,
    rows: number,
    unchecked?: { firstRow: number },
  ): Promise<void> {
    // Statistics first: if they throw, nothing of this slice is kept. Non-finite input sums send
    // the slice to the exact check, which names the first bad value; if it finds none (the
    // transform overflowed float32 on finite values), the statistics go on as before and the
    // final check of the statistics reports it.
    const check = unchecked && (() => checkFiniteRows(x, this.inputWidth, unchecked.firstRow));
    if (!this.prefaulted && this.options.pause) {
      this.prefaulted = true;
      await this.firstInputs.prefault(rows, this.slicePause);
    }
    this.first.add(await this.firstInputs.measureAsync(x, rows, check));
    await this.store.append(x);
  }

  protected async compute(n: number): Promise<ModeResult> {
    const arithmetic: PrefixArithmetic = this.flat
      ? { kind: 'centred', centre: this.firstInputs.centre() }
      : { kind: 'float64' };
    for (let k = 0; k < this.layers.length; k++) {
      const layer = this.layers[k]!;
      let moments = this.first;
      if (k > 0) {
        moments = new ChannelMoments(layer.bn.numFeatures);
        // Compiled now: the BatchNorms before k hold their new statistics. On the calling thread
        // (the upload has ended, so there is nothing left to overlap), each chunk in slices of
        // bounded work with pause() between them (measureInSlices): a chunk of 4,096 rows
        // through a convolutional prefix would hold a server's event loop for ~150 ms.
        const inputs = new LayerInputStatistics(
          this.sourceOnCallingThread,
          layer,
          undefined,
          arithmetic,
        );
        try {
          let done = 0;
          for await (const chunk of this.store.chunks()) {
            moments.add(await inputs.measureInSlices(chunk.data, chunk.rows, this.slicePause));
            done += chunk.rows;
            this.progress({
              phase: 'statistics',
              rows: done,
              totalRows: n,
              layer: layer.index,
              path: layer.path,
            });
            await this.pause();
          }
        } finally {
          inputs.close();
        }
      } else {
        this.progress({
          phase: 'statistics',
          rows: n,
          totalRows: n,
          layer: layer.index,
          path: layer.path,
        });
      }
      let mean = moments.mean;
      let variance = moments.unbiasedVariance();
      if (this.options.mode === 'prior') {
        const N = this.options.priorStrength;
        this.dataVars[k] = variance;
        mean = blendStatistics(this.state.means[k]!, mean, N, n);
        variance = blendStatistics(this.state.vars[k]!, variance, N, n);
      }
      layer.bn.runningMean.data.set(mean);
      layer.bn.runningVar.data.set(variance);
    }
    return {};
  }

  protected async release(): Promise<void> {
    this.firstInputs.close();
    await this.store.close();
  }
}
