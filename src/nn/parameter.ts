import { Tensor } from './tensor.js';

/** A learnable tensor and the gradient accumulated into it by backward passes. */
export class Parameter {
  private valueTensor: Tensor;
  private gradient: Float32Array;

  constructor(value: Tensor) {
    this.valueTensor = value;
    this.gradient = new Float32Array(value.numel);
  }

  get value(): Tensor {
    return this.valueTensor;
  }

  get grad(): Float32Array {
    return this.gradient;
  }

  zeroGrad(): void {
    this.gradient.fill(0);
  }

  /**
   * Moves the storage into `value` and `grad` (each numel long), copying the current contents:
   * how kernels (nn/kernels.ts) take a parameter into the memory they compute in. Read `value`
   * and `grad` afresh after a move; arrays taken before it no longer belong to the parameter.
   */
  moveTo(value: Float32Array, grad: Float32Array): void {
    const n = this.valueTensor.numel;
    if (value.length !== n || grad.length !== n)
      throw new RangeError(
        `a parameter of ${n} values cannot move into ${value.length} and ${grad.length}`,
      );
    value.set(this.valueTensor.data);
    grad.set(this.gradient);
    this.valueTensor = new Tensor(value, this.valueTensor.shape);
    this.gradient = grad;
  }
}
