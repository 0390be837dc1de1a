import { NormserveError } from '../errors/index.js';
import type { Kernels } from './kernels.js';
import { Module, requireCache, type StateDict, type StateValue } from './module.js';
import { Parameter } from './parameter.js';
import { referenceKernels } from './reference-kernels.js';
import type { Sliced } from './slices.js';
import { Tensor } from './tensor.js';

export interface BatchNormOptions {
  numFeatures: number;
  eps?: number;
  /** Weight of the new batch in the running averages; `null` = cumulative average. */
  momentum?: number | null;
  affine?: boolean;
}

/** Per-channel mean and biased variance of a batch, accumulated in float64. */
export interface ChannelStatistics {
  /** Values per channel (N times the spatial size). */
  count: number;
  mean: Float64Array;
  /** Biased variance: Σ(x − mean)² / count. */
  varBiased: Float64Array;
}

/**
 * Mean and biased variance per channel of x with layout [N, C, *spatial] (two passes, float64,
 * each channel summed batch row by batch row), the statistics BatchNorm normalizes with in
 * training; on `kernels` (the JavaScript reference by default), which give the same bits.
 */
export function channelStatistics(
  x: Float32Array,
  n: number,
  c: number,
  spatial: number,
  kernels: Kernels = referenceKernels,
): ChannelStatistics {
  const count = n * spatial;
  const layout = { n, c, s: spatial };
  const mean = new Float64Array(c);
  kernels.channelSums(x, layout, mean);
  for (let ch = 0; ch < c; ch++) mean[ch] = mean[ch]! / count;
  const varBiased = new Float64Array(c);
  kernels.channelSumSquares(x, layout, mean, varBiased);
  for (let ch = 0; ch < c; ch++) varBiased[ch] = varBiased[ch]! / count;
  return { count, mean, varBiased };
}

/** PyTorch's words when a train-mode BatchNorm is given one value per channel. */
export const ONE_VALUE_PER_CHANNEL = 'Expected more than 1 value per channel when training';

/**
 * Values per channel of a BatchNorm input of shape [N, C, *spatial]: the product of its sizes
 * except dim 1, N·H·W for BatchNorm2d and N for BatchNorm1d on [N, C] — what PyTorch checks
 * before a train-mode forward (torch.nn.functional._verify_batch_size raises
 * ONE_VALUE_PER_CHANNEL when it is 1: a single value has no variance to normalize with).
 */
export function valuesPerChannel(inputShape: readonly number[]): number {
  let values = inputShape[0] ?? 0;
  for (let i = 2; i < inputShape.length; i++) values *= inputShape[i]!;
  return values;
}

/**
 * The one rule on the size of a batch that BatchNorm puts in training mode: a batch of `rows`
 * rows is fatal exactly when some BatchNorm would see one value per channel, rows·H·W = 1 for
 * inputs [C, H, W] (so only rows = 1 at a BatchNorm whose H·W is 1) and rows = 1 for a flat [C]
 * (BatchNorm1d). `sampleShape` is the BatchNorm's input without the batch dimension; the result
 * is the fewest rows a train-mode batch must hold for it: 1, or 2 when one row gives one value
 * per channel. (An empty batch is no batch: callers never run one.)
 */
export function minimumTrainingRows(sampleShape: readonly number[]): number {
  return valuesPerChannel([1, ...sampleShape]) > 1 ? 1 : 2;
}

/**
 * Why a train-mode batch of `rows` rows cannot go through the BatchNorm at `place` whose sample
 * input shape is `sampleShape`, or undefined when it can (minimumTrainingRows).
 */
export function oneValuePerChannelReason(
  place: string,
  sampleShape: readonly number[],
  rows: number,
): string | undefined {
  if (rows >= minimumTrainingRows(sampleShape)) return undefined;
  return `${place} would get input [${[rows, ...sampleShape].join(', ')}] in a batch of ${rows} row${rows === 1 ? '' : 's'}: one value per channel, which a BatchNorm cannot normalize in training (PyTorch: "${ONE_VALUE_PER_CHANNEL}")`;
}

interface Cache {
  input: Tensor;
  /** The statistics the forward pass normalized with: x̂ = (x − mean)·invstd, recomputed by backward. */
  mean: Float64Array;
  invstd: Float64Array;
  usedBatchStats: boolean;
}

/**
 * The shared math of torch.nn.BatchNorm1d/2d (torch/nn/modules/batchnorm.py, _BatchNorm) over a
 * [N, C, *spatial] layout. Training normalizes with the batch mean and the biased batch variance
 * and updates the running statistics with the unbiased variance:
 *   running = (1 − m)·running + m·batch, m = momentum, or 1/num_batches_tracked when momentum is null.
 * Eval normalizes with the running statistics and never touches them.
 */
export abstract class BatchNorm extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly weight: Parameter | undefined;
  readonly bias: Parameter | undefined;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  numBatchesTracked = 0;
  /**
   * Called with the input of every forward before anything else, like a PyTorch forward pre-hook
   * (recalibration reads the inputs of one BatchNorm inside a network this way).
   */
  preHook: ((input: Tensor) => void) | undefined;
  private cache: Cache | undefined;
  private readonly output = this.stepArray();
  private readonly inputGrad = this.stepArray();

  constructor(options: BatchNormOptions) {
    super();
    this.numFeatures = options.numFeatures;
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum === undefined ? 0.1 : options.momentum;
    this.affine = options.affine ?? true;
    this.weight = this.affine ? new Parameter(Tensor.filled([this.numFeatures], 1)) : undefined;
    this.bias = this.affine ? new Parameter(Tensor.zeros([this.numFeatures])) : undefined;
    this.runningMean = Tensor.zeros([this.numFeatures]);
    this.runningVar = Tensor.filled([this.numFeatures], 1);
  }

  /** Throws unless the input rank suits the subclass (2 or 3 for 1d, 4 for 2d). */
  protected abstract checkRank(shape: readonly number[]): void;

  override namedParameters(): [string, Parameter][] {
    return this.weight && this.bias
      ? [
          ['weight', this.weight],
          ['bias', this.bias],
        ]
      : [];
  }

  override stateDict(): StateDict {
    const state = super.stateDict();
    state.set('running_mean', this.runningMean);
    state.set('running_var', this.runningVar);
    state.set('num_batches_tracked', BigInt(this.numBatchesTracked));
    return state;
  }

  protected override *assign(
    fullName: string,
    name: string,
    target: StateValue,
    value: StateValue,
  ): Sliced<void> {
    if (name === 'num_batches_tracked' && typeof value === 'bigint') {
      this.numBatchesTracked = Number(value);
      return;
    }
    yield* super.assign(fullName, name, target, value);
  }

  /** [N, C, spatial] of an input, after checking its rank and channel count. */
  layout(shape: readonly number[]): [number, number, number] {
    this.checkRank(shape);
    const c = shape[1]!;
    if (c !== this.numFeatures) {
      throw new NormserveError(
        'SHAPE_MISMATCH',
        `${this.kind} expects ${this.numFeatures} channels, got input of shape [${shape}]`,
      );
    }
    let spatial = 1;
    for (let i = 2; i < shape.length; i++) spatial *= shape[i]!;
    return [shape[0]!, c, spatial];
  }

  forward(input: Tensor): Tensor {
    this.preHook?.(input);
    const [n, c, spatial] = this.layout(input.shape);
    const x = input.data;
    let mean: Float64Array;
    let variance: ArrayLike<number>;
    if (this.training) {
      if (valuesPerChannel(input.shape) <= 1) {
        throw new NormserveError(
          'BATCHNORM_SINGLE_VALUE',
          `${ONE_VALUE_PER_CHANNEL}, got input size [${input.shape.join(', ')}]`,
        );
      }
      const stats = channelStatistics(x, n, c, spatial, this.kernels);
      this.updateRunningStatistics(stats);
      mean = stats.mean;
      variance = stats.varBiased;
    } else {
      mean = Float64Array.from(this.runningMean.data);
      variance = this.runningVar.data;
    }
    const invstd = new Float64Array(c);
    for (let ch = 0; ch < c; ch++) invstd[ch] = 1 / Math.sqrt(variance[ch]! + this.eps);
    const gamma = this.weight
      ? Float64Array.from(this.weight.value.data)
      : new Float64Array(c).fill(1);
    const beta = this.bias ? Float64Array.from(this.bias.value.data) : new Float64Array(c);
    const out = this.output.take(x.length, this.kernels, this.reusing);
    const layout = { n, c, s: spatial };
    if (this.training) {
      this.kernels.batchNormNormalize(x, out, layout, { mean, invstd, gamma, beta });
    } else {
      // Eval: x·α + (β − μ·α) with α = γ/√(σ² + ε), as PyTorch computes it and as the compiled
      // plan's affine step does (batchNormAffine), not (x − μ)·invstd·γ + β — the same value up
      // to rounding, but a zero's sign differs: at x = μ = +0 with γ < 0 and β = −0, PyTorch gives
      // +0·α + (−0 − (+0·α)) = −0 + +0 = +0. The kernel's (x − 0)·α·1 + β' is exactly x·α + β'
      // (float64, rounded once).
      const alpha = Float64Array.from(gamma, (g, ch) => g / Math.sqrt(variance[ch]! + this.eps));
      this.kernels.batchNormNormalize(x, out, layout, {
        mean: new Float64Array(c),
        invstd: alpha,
        gamma: new Float64Array(c).fill(1),
        beta: Float64Array.from(beta, (b, ch) => b - mean[ch]! * alpha[ch]!),
      });
    }
    this.cache = { input, mean, invstd, usedBatchStats: this.training };
    return new Tensor(out, input.shape);
  }

  /**
   * running = (1 − m)·running + m·batch, with the unbiased batch variance (PyTorch's convention);
   * m = momentum, or 1/num_batches_tracked (cumulative average) when it is null. Train-mode
   * forward calls it with the layer's momentum; running-mode recalibration with null, as
   * torch.optim.swa_utils.update_bn sets it.
   */
  updateRunningStatistics(stats: ChannelStatistics, momentum: number | null = this.momentum): void {
    this.numBatchesTracked += 1;
    const factor = momentum === null ? 1 / this.numBatchesTracked : momentum;
    const unbiased = stats.count / (stats.count - 1);
    const rm = this.runningMean.data;
    const rv = this.runningVar.data;
    for (let ch = 0; ch < this.numFeatures; ch++) {
      rm[ch] = (1 - factor) * rm[ch]! + factor * stats.mean[ch]!;
      rv[ch] = (1 - factor) * rv[ch]! + factor * stats.varBiased[ch]! * unbiased;
    }
  }

  backward(gradOutput: Tensor): Tensor {
    const { input, mean, invstd, usedBatchStats } = requireCache(this.cache, this.kind);
    const [n, c, spatial] = this.layout(input.shape);
    const layout = { n, c, s: spatial };
    const dy = gradOutput.data;
    const dx = this.inputGrad.take(dy.length, this.kernels, this.reusing);
    const gamma = this.weight?.value.data;
    const count = n * spatial;
    const sumDy = new Float64Array(c);
    const sumDyXhat = new Float64Array(c);
    this.kernels.batchNormBackwardSums(dy, input.data, layout, { mean, invstd, sumDy, sumDyXhat });
    if (this.weight && this.bias) {
      for (let ch = 0; ch < c; ch++) {
        this.weight.grad[ch] = this.weight.grad[ch]! + sumDyXhat[ch]!;
        this.bias.grad[ch] = this.bias.grad[ch]! + sumDy[ch]!;
      }
    }
    // With batch statistics the mean and variance depend on x too:
    // dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)); with running statistics dx = γ·invstd·dy.
    const scale = new Float64Array(c);
    for (let ch = 0; ch < c; ch++) scale[ch] = (gamma ? gamma[ch]! : 1) * invstd[ch]!;
    if (usedBatchStats) {
      const scaleOverCount = scale.map((v) => v / count);
      this.kernels.batchNormInputGrad(
        dy,
        input.data,
        dx,
        layout,
        { mean, invstd, scaleOverCount, sumDy, sumDyXhat },
        count,
      );
    } else {
      this.kernels.channelScale(dy, dx, layout, scale);
    }
    return new Tensor(dx, input.shape);
  }
}

/** torch.nn.BatchNorm1d: input [N, C] or [N, C, L]. */
export class BatchNorm1d extends BatchNorm {
  readonly kind = 'BatchNorm1d';

  protected checkRank(shape: readonly number[]): void {
    if (shape.length !== 2 && shape.length !== 3) {
      throw new NormserveError(
        'SHAPE_MISMATCH',
        `expected 2D or 3D input (got ${shape.length}D input)`,
      );
    }
  }
}

/** torch.nn.BatchNorm2d: input [N, C, H, W]. */
export class BatchNorm2d extends BatchNorm {
  readonly kind = 'BatchNorm2d';

  protected checkRank(shape: readonly number[]): void {
    if (shape.length !== 4) {
      throw new NormserveError('SHAPE_MISMATCH', `expected 4D input (got ${shape.length}D input)`);
    }
  }
}
