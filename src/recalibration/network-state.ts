import { type Module, namedModules, type Sequential } from '../nn/index.js';
import type { BatchNormLayer } from './batch-norm-layers.js';

/**
 * What a recalibration may touch, captured before it starts: train/eval flags of the network and
 * every module in it (nested ones too), each BatchNorm's running statistics and num_batches_tracked.
 * The original statistics feed the shift report and `prior` mode; everything is restored on
 * failure. Momentum is not among them: it is readonly (config), and `running` mode passes its
 * null (cumulative average) to each update instead of setting it.
 */
export class NetworkState {
  readonly means: Float32Array[];
  readonly vars: Float32Array[];
  private readonly batchesTracked: number[];
  private readonly modules: Module[];
  private readonly moduleTraining: boolean[];

  constructor(
    private readonly network: Sequential,
    private readonly layers: readonly BatchNormLayer[],
  ) {
    this.means = layers.map(({ bn }) => bn.runningMean.data.slice());
    this.vars = layers.map(({ bn }) => bn.runningVar.data.slice());
    this.batchesTracked = layers.map(({ bn }) => bn.numBatchesTracked);
    this.modules = namedModules(network).map(([, m]) => m);
    this.moduleTraining = this.modules.map((m) => m.training);
  }

  /** Every module in eval mode (Dropout off, BatchNorm on running statistics). */
  enterEval(): void {
    this.network.eval();
  }

  /** Back to the caller's train/eval flags. */
  leave(): void {
    this.modules.forEach((m, i) => {
      m.training = this.moduleTraining[i]!;
    });
  }

  /** Running statistics and num_batches_tracked as captured. */
  restoreBuffers(): void {
    this.layers.forEach(({ bn }, k) => {
      bn.runningMean.data.set(this.means[k]!);
      bn.runningVar.data.set(this.vars[k]!);
      bn.numBatchesTracked = this.batchesTracked[k]!;
    });
  }
}
