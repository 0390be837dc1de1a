import { NormserveError } from '../errors/index.js';
import { Module } from './module.js';
import type { Tensor } from './tensor.js';

/**
 * torch.nn.Flatten: merges dimensions start_dim..end_dim (of the batched input; negative counts
 * from the end) into one. Row-major storage is unchanged, so forward and backward only reshape.
 * start_dim ≥ 1 keeps the batch dimension, and with it the independence of rows.
 */
export class Flatten extends Module {
  readonly kind = 'Flatten';
  readonly startDim: number;
  readonly endDim: number;
  private inputShape: readonly number[] | undefined;

  constructor(options: { startDim?: number; endDim?: number } = {}) {
    super();
    this.startDim = options.startDim ?? 1;
    this.endDim = options.endDim ?? -1;
    if (this.startDim < 1) throw new RangeError('Flatten: start_dim must be ≥ 1 (the batch stays)');
  }

  /** The flattened shape of a batched shape. */
  outputShape(shape: readonly number[]): number[] {
    const rank = shape.length;
    const end = this.endDim < 0 ? rank + this.endDim : this.endDim;
    if (this.startDim >= rank || end < this.startDim || end >= rank) {
      throw new NormserveError(
        'SHAPE_MISMATCH',
        `Flatten(start_dim=${this.startDim}, end_dim=${this.endDim}) does not fit input [${shape}]`,
      );
    }
    let merged = 1;
    for (let d = this.startDim; d <= end; d++) merged *= shape[d]!;
    return [...shape.slice(0, this.startDim), merged, ...shape.slice(end + 1)];
  }

  forward(input: Tensor): Tensor {
    this.inputShape = input.shape;
    return input.reshape(this.outputShape(input.shape));
  }

  backward(gradOutput: Tensor): Tensor {
    if (!this.inputShape) throw new Error('Flatten.backward() called before forward()');
    return gradOutput.reshape(this.inputShape);
  }
}
