import { NormserveError } from '../errors/index.js';
import { Module, requireCache } from './module.js';
import { Parameter } from './parameter.js';
import type { Rng } from './rng.js';
import { Tensor } from './tensor.js';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
}

/** y = x Wᵀ + b with W of shape [outFeatures, inFeatures], as torch.nn.Linear. */
export class Linear extends Module {
  readonly kind = 'Linear';
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weight: Parameter;
  readonly bias: Parameter | undefined;
  private input: Tensor | undefined;

  /**
   * PyTorch's default initialisation (torch/nn/modules/linear.py, reset_parameters):
   * kaiming_uniform_(W, a=√5) draws U(-b, b) with b = gain·√(3/fan_in), gain = √(2/(1+a²)),
   * which is b = 1/√fan_in; the bias is U(-1/√fan_in, 1/√fan_in).
   */
  constructor(options: LinearOptions, rng?: Rng) {
    super();
    this.inFeatures = options.inFeatures;
    this.outFeatures = options.outFeatures;
    this.weight = new Parameter(Tensor.zeros([this.outFeatures, this.inFeatures]));
    this.bias =
      options.bias === false ? undefined : new Parameter(Tensor.zeros([this.outFeatures]));
    if (rng) {
      const bound = this.inFeatures > 0 ? 1 / Math.sqrt(this.inFeatures) : 0;
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

  forward(input: Tensor): Tensor {
    const inF = this.inFeatures;
    const outF = this.outFeatures;
    if (input.shape.length < 1 || input.shape[input.shape.length - 1] !== inF) {
      throw new NormserveError(
        'SHAPE_MISMATCH',
        `Linear expects [..., ${inF}], got [${input.shape}]`,
      );
    }
    const rows = input.numel / inF;
    const x = input.data;
    const w = this.weight.value.data;
    const b = this.bias?.value.data;
    const out = new Float32Array(rows * outF);
    for (let n = 0; n < rows; n++) {
      const xo = n * inF;
      for (let o = 0; o < outF; o++) {
        const wo = o * inF;
        let acc = b ? b[o]! : 0;
        for (let i = 0; i < inF; i++) acc += x[xo + i]! * w[wo + i]!;
        out[n * outF + o] = acc;
      }
    }
    this.input = input;
    return new Tensor(out, [...input.shape.slice(0, -1), outF]);
  }

  backward(gradOutput: Tensor): Tensor {
    const input = requireCache(this.input, this.kind);
    const inF = this.inFeatures;
    const outF = this.outFeatures;
    const rows = input.numel / inF;
    const x = input.data;
    const g = gradOutput.data;
    const w = this.weight.value.data;
    // Accumulate in float64, then add once into the float32 gradients.
    const dW = new Float64Array(outF * inF);
    const dB = new Float64Array(outF);
    const dX = new Float32Array(rows * inF);
    const rowAcc = new Float64Array(inF);
    for (let n = 0; n < rows; n++) {
      const xo = n * inF;
      rowAcc.fill(0);
      for (let o = 0; o < outF; o++) {
        const go = g[n * outF + o]!;
        if (go === 0) continue;
        dB[o] = dB[o]! + go;
        const wo = o * inF;
        for (let i = 0; i < inF; i++) {
          dW[wo + i] = dW[wo + i]! + go * x[xo + i]!;
          rowAcc[i] = rowAcc[i]! + go * w[wo + i]!;
        }
      }
      dX.set(rowAcc, xo);
    }
    const gw = this.weight.grad;
    for (let i = 0; i < gw.length; i++) gw[i] = gw[i]! + dW[i]!;
    if (this.bias) {
      const gb = this.bias.grad;
      for (let o = 0; o < outF; o++) gb[o] = gb[o]! + dB[o]!;
    }
    return new Tensor(dX, input.shape);
  }
}
