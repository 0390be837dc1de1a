import { NormserveError } from '../errors/index.js';
import { requireCache } from './module.js';
import type { Rng } from './rng.js';
import { Tensor } from './tensor.js';
import { WeightedLayer } from './weighted-layer.js';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  bias?: boolean;
}

/** y = x Wᵀ + b with W of shape [outFeatures, inFeatures], as torch.nn.Linear. */
export class Linear extends WeightedLayer {
  readonly kind = 'Linear';
  readonly inFeatures: number;
  readonly outFeatures: number;
  private input: Tensor | undefined;

  /** PyTorch's default initialisation with an Rng (see WeightedLayer), zeros without. */
  constructor(options: LinearOptions, rng?: Rng) {
    super([options.outFeatures, options.inFeatures], options.bias !== false, rng);
    this.inFeatures = options.inFeatures;
    this.outFeatures = options.outFeatures;
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
