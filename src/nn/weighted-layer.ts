import { Module } from './module.js';
import { Parameter } from './parameter.js';
import type { Rng } from './rng.js';
import { numelOf, Tensor } from './tensor.js';

/**
 * A layer with a weight [out, ...fan_in dims] and an optional bias [out] (Linear, Conv2d), named
 * `weight` and `bias` as in PyTorch. With an Rng, PyTorch's default initialisation
 * (torch/nn/modules/linear.py and conv.py, reset_parameters): kaiming_uniform_(W, a=√5) draws
 * U(−b, b) with b = gain·√(3/fan_in), gain = √(2/(1+a²)), which is b = 1/√fan_in; the bias is
 * U(−1/√fan_in, 1/√fan_in). fan_in is the product of the weight's dimensions after the first.
 * Without one, both start at zero (to be loaded from a checkpoint).
 */
export abstract class WeightedLayer extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | undefined;

  protected constructor(weightShape: readonly number[], bias: boolean, rng?: Rng) {
    super();
    this.weight = new Parameter(Tensor.zeros(weightShape));
    this.bias = bias ? new Parameter(Tensor.zeros([weightShape[0]!])) : undefined;
    if (rng) {
      const fanIn = numelOf(weightShape.slice(1));
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      const w = this.weight.value.data;
      for (let i = 0; i < w.length; i++) w[i] = rng.uniform(-bound, bound);
      const b = this.bias?.value.data;
      if (b) for (let i = 0; i < b.length; i++) b[i] = rng.uniform(-bound, bound);
    }
  }

  override namedParameters(): [string, Parameter][] {
    return this.bias
      ? [
          ['weight', this.weight],
          ['bias', this.bias],
        ]
      : [['weight', this.weight]];
  }
}
