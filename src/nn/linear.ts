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
    const out = new Float32Array(rows * outF);
    // y = b + x·Wᵀ: B = Wᵀ, stored as W [out, in].
    this.kernels.matmul({
      m: rows,
      n: outF,
      k: inF,
      a: input.data,
      b: this.weight.value.data,
      transB: true,
      bias: this.bias?.value.data,
      c: out,
    });
    this.input = input;
    return new Tensor(out, [...input.shape.slice(0, -1), outF]);
  }

  backward(gradOutput: Tensor): Tensor {
    const input = this.backwardParameters(gradOutput);
    const rows = input.numel / this.inFeatures;
    // dX = gradY·W.
    const dX = new Float32Array(rows * this.inFeatures);
    this.kernels.matmul({
      m: rows,
      n: this.inFeatures,
      k: this.outFeatures,
      a: gradOutput.data,
      b: this.weight.value.data,
      c: dX,
    });
    return new Tensor(dX, input.shape);
  }

  /** dW += gradYᵀ·x (float32 products summed over the batch rows in order), db += Σ gradY (float64). */
  override backwardParameters(gradOutput: Tensor): Tensor {
    const input = requireCache(this.input, this.kind);
    const inF = this.inFeatures;
    const outF = this.outFeatures;
    const rows = input.numel / inF;
    this.kernels.matmul({
      m: outF,
      n: inF,
      k: rows,
      a: gradOutput.data,
      transA: true,
      b: input.data,
      c: this.weight.grad,
      accumulate: true,
    });
    if (this.bias) {
      const dB = new Float64Array(outF);
      this.kernels.channelSums(gradOutput.data, { n: rows, c: outF, s: 1 }, dB);
      const gb = this.bias.grad;
      for (let o = 0; o < outF; o++) gb[o] = gb[o]! + dB[o]!;
    }
    return input;
  }
}
