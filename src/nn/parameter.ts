import type { Tensor } from './tensor.js';

/** A learnable tensor and the gradient accumulated into it by backward passes. */
export class Parameter {
  readonly value: Tensor;
  readonly grad: Float32Array;

  constructor(value: Tensor) {
    this.value = value;
    this.grad = new Float32Array(value.numel);
  }

  zeroGrad(): void {
    this.grad.fill(0);
  }
}
