import { channelStatistics, type FeatureTransform, type Sequential, Tensor } from '../nn/index.js';
import { type BatchNormLayer, batchNormInput } from './batch-norm-layers.js';
import { ChannelMoments } from './channel-moments.js';
import { blendStatistics } from './prior-blend.js';
import type { ResolvedOptions } from './recalibration-options.js';
import { RowStore } from './row-store.js';
import { type ModeResult, StreamingRecalibrator } from './streaming-recalibrator.js';

/**
 * `exact` and `prior` mode, layer by layer in network order (AdaBN, Li et al. 2016): BatchNorm k
 * gets the mean and unbiased variance (÷(n − 1), PyTorch's running_var convention) of its inputs
 * over all n rows — per channel over N·H·W values for a BatchNorm2d, n = N·H·W — with every
 * earlier layer in eval mode (Dropout off) and earlier BatchNorms already recalibrated, those
 * inside residual blocks included. `prior` blends each target estimate with the source statistics
 * (blendStatistics) before moving on, so later layers see the blended earlier ones.
 *
 * Statistics accumulate per channel in float64 (ChannelMoments) and are stored rounded to
 * float32. The input of BatchNorm k depends on the new statistics of BatchNorm k − 1, so the rows
 * are kept (RowStore) and run again from the input for each later BatchNorm, a chunk at a time;
 * the first BatchNorm's statistics are folded in as rows arrive.
 *
 * num_batches_tracked is left unchanged: it counts the optimizer steps that trained the source
 * model, eval never reads it, and nothing here is a training step.
 */
export class LayerwiseRecalibrator extends StreamingRecalibrator {
  private readonly store: RowStore;
  private readonly first: ChannelMoments;

  constructor(
    network: Sequential,
    inputTransform: FeatureTransform | undefined,
    inputShape: readonly number[],
    options: ResolvedOptions,
    layers: readonly BatchNormLayer[],
  ) {
    super(network, inputTransform, inputShape, options, layers);
    this.store = new RowStore(this.inputWidth, options.chunkRows);
    this.first = new ChannelMoments(layers[0]!.bn.numFeatures);
  }

  protected consume(x: Float32Array, rows: number): void {
    // Statistics first: if the forward throws, nothing of this slice is kept.
    this.accumulate(this.first, this.layers[0]!, x, rows);
    this.store.append(x);
  }

  protected async compute(n: number): Promise<ModeResult> {
    for (let k = 0; k < this.layers.length; k++) {
      const layer = this.layers[k]!;
      let moments = this.first;
      if (k > 0) {
        moments = new ChannelMoments(layer.bn.numFeatures);
        let done = 0;
        for (const chunk of this.store.chunks()) {
          this.accumulate(moments, layer, chunk.data, chunk.rows);
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
        mean = blendStatistics(this.state.means[k]!, mean, N, n);
        variance = blendStatistics(this.state.vars[k]!, variance, N, n);
      }
      layer.bn.runningMean.data.set(mean);
      layer.bn.runningVar.data.set(variance);
    }
    return {};
  }

  /** Adds the statistics of `layer`'s inputs for `rows` input rows, earlier layers in eval. */
  private accumulate(
    moments: ChannelMoments,
    layer: BatchNormLayer,
    x: Float32Array,
    rows: number,
  ): void {
    this.state.enterEval();
    try {
      const h = batchNormInput(this.network, layer, new Tensor(x, [rows, ...this.inputShape]));
      const [batch, channels, spatial] = layer.bn.layout(h.shape);
      moments.add(channelStatistics(h.data, batch, channels, spatial));
    } finally {
      this.state.leave();
    }
  }
}
