import type { FoldStatistics } from '../inference/index.js';
import type { FeatureTransform, Sequential } from '../nn/index.js';
import { type BatchNormLayer, minimumRows } from './batch-norm-layers.js';
import { LayerInputStatistics } from './layer-input-statistics.js';
import type { ResolvedOptions } from './recalibration-options.js';
import { type ModeResult, StreamingRecalibrator } from './streaming-recalibrator.js';

/**
 * `running` mode, after torch.optim.swa_utils.update_bn (torch/optim/swa_utils.py): reset the
 * running statistics (mean 0, var 1, num_batches_tracked 0), update them with momentum = null
 * (cumulative average; passed to each update, the layers' own momentum untouched) and forward
 * consecutive batches of `batchSize` rows with the BatchNorms in train mode, which normalize with
 * the batch statistics and fold the batch mean and unbiased variance into the running ones: after
 * B batches each is the plain average over the batches, and num_batches_tracked = B. Unlike update_bn, Dropout stays off (every other layer is in eval).
 *
 * The same statistics path as `exact`: for each batch and BatchNorm k in order, the compiled
 * plan up to k's input — the earlier BatchNorms folded with this batch's own mean and biased
 * variance, as train mode normalizes — runs on the fast executor (one per BatchNorm, its numbers
 * reloaded per batch), which sums k's inputs in float64; the batch mean and unbiased variance
 * enter the running statistics through BatchNorm's own update rule.
 *
 * Batches are processed as soon as they are full, so only one batch of rows is ever held (memory
 * is bounded by `batchSize`, whatever `chunkRows` is). A final partial batch is used as update_bn
 * uses it (a DataLoader's last batch), a single row included where every BatchNorm sees maps of
 * H·W > 1 (PyTorch's rule, nn's minimumTrainingRows); where one row gives some BatchNorm one
 * value per channel (BatchNorm1d, 1×1 maps: torch's BatchNorm raises "Expected more than 1 value
 * per channel when training", and update_bn with it), a final batch of one row is skipped and
 * reported as `skipped: 1`.
 */
export class RunningRecalibrator extends StreamingRecalibrator {
  private readonly batch: Float32Array;
  private readonly inputs: (LayerInputStatistics | undefined)[];
  private pending = 0;
  private batches = 0;
  private batchedRows = 0;
  /** Rows taken so far, including the slice being consumed (received counts whole slices). */
  private seen = 0;

  constructor(
    network: Sequential,
    inputTransform: FeatureTransform | undefined,
    inputShape: readonly number[],
    options: ResolvedOptions,
    layers: readonly BatchNormLayer[],
  ) {
    super(network, inputTransform, inputShape, options, layers, options.batchSize);
    this.batch = new Float32Array(options.batchSize * this.inputWidth);
    this.inputs = layers.map(() => undefined);
  }

  protected async consume(x: Float32Array, rows: number): Promise<void> {
    const w = this.inputWidth;
    const size = this.options.batchSize;
    let offset = 0;
    while (offset < rows) {
      const take = Math.min(size - this.pending, rows - offset);
      this.batch.set(x.subarray(offset * w, (offset + take) * w), this.pending * w);
      this.pending += take;
      this.seen += take;
      offset += take;
      if (this.pending === size) await this.runBatch();
    }
  }

  protected async compute(): Promise<ModeResult> {
    let skipped = 0;
    if (this.pending >= minimumRows(this.layers)) await this.runBatch();
    else skipped = this.pending;
    this.pending = 0;
    return { batches: this.batches, skipped };
  }

  protected async release(): Promise<void> {
    for (const s of this.inputs) s?.close();
  }

  private async runBatch(): Promise<void> {
    const rows = this.pending;
    this.pending = 0;
    if (this.batches === 0) {
      // BatchNorm.reset_running_stats().
      for (const { bn } of this.layers) {
        bn.runningMean.data.fill(0);
        bn.runningVar.data.fill(1);
        bn.numBatchesTracked = 0;
      }
    }
    const x = this.batch.subarray(0, rows * this.inputWidth);
    const folded = new Map<string, FoldStatistics>();
    for (const [k, layer] of this.layers.entries()) {
      let inputs = this.inputs[k];
      if (!inputs) {
        // The first BatchNorm's plan on the helper thread (if the engine options give one),
        // the later ones on the calling thread (sourceOnCallingThread).
        inputs = new LayerInputStatistics(
          k === 0 ? this.source : this.sourceOnCallingThread,
          layer,
          folded,
        );
        this.inputs[k] = inputs;
      } else if (k > 0) {
        inputs.refold(folded);
      }
      // The first BatchNorm's plan may run on a helper thread (measureAsync); the later ones run
      // on the calling thread, in slices of bounded work (measureInSlices), since a batch may
      // hold up to MAX_RECALIBRATION_BATCH_SIZE rows.
      const { count, mean, m2 } =
        k === 0
          ? await inputs.measureAsync(x, rows)
          : await inputs.measureInSlices(x, rows, this.slicePause);
      const varBiased = m2.map((v) => v / count);
      // Train mode: the running statistics take the batch mean and unbiased variance
      // (cumulative average, momentum null), and later layers see this batch normalized with
      // its mean and biased variance.
      layer.bn.updateRunningStatistics({ count, mean, varBiased }, null);
      folded.set(layer.path, { mean, variance: varBiased });
    }
    this.batches += 1;
    this.batchedRows += rows;
    this.progress({ phase: 'statistics', rows: this.batchedRows, totalRows: this.seen });
  }
}
