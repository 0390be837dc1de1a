import { NormserveError } from '../errors/index.js';
import { Module, requireCache } from './module.js';
import { Parameter } from './parameter.js';
import { numelOf, Tensor } from './tensor.js';

export interface LayerNormOptions {
  normalizedShape: readonly number[];
  eps?: number;
  elementwiseAffine?: boolean;
}

/**
 * torch.nn.LayerNorm: normalizes each sample over its trailing `normalizedShape` dimensions with
 * that sample's own mean and biased variance, in training and eval alike (no running statistics).
 */
export class LayerNorm extends Module {
  readonly kind = 'LayerNorm';
  readonly normalizedShape: readonly number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  readonly weight: Parameter | undefined;
  readonly bias: Parameter | undefined;
  private cache: { input: Tensor; xhat: Float64Array; invstd: Float64Array } | undefined;

  constructor(options: LayerNormOptions) {
    super();
    this.normalizedShape = [...options.normalizedShape];
    this.eps = options.eps ?? 1e-5;
    this.elementwiseAffine = options.elementwiseAffine ?? true;
    this.weight = this.elementwiseAffine
      ? new Parameter(Tensor.filled(this.normalizedShape, 1))
      : undefined;
    this.bias = this.elementwiseAffine
      ? new Parameter(Tensor.zeros(this.normalizedShape))
      : undefined;
  }

  override namedParameters(): [string, Parameter][] {
    return this.weight && this.bias
      ? [
          ['weight', this.weight],
          ['bias', this.bias],
        ]
      : [];
  }

  /** Elements normalized together (the product of normalizedShape). */
  get groupSize(): number {
    return numelOf(this.normalizedShape);
  }

  forward(input: Tensor): Tensor {
    const k = this.groupSize;
    const dims = this.normalizedShape.length;
    const tail = input.shape.slice(input.shape.length - dims);
    if (input.shape.length < dims || tail.some((d, i) => d !== this.normalizedShape[i])) {
      throw new NormserveError(
        'SHAPE_MISMATCH',
        `LayerNorm expects input [*, ${this.normalizedShape.join(', ')}], got [${input.shape}]`,
      );
    }
    const groups = input.numel / k;
    const x = input.data;
    const out = new Float32Array(x.length);
    const xhat = new Float64Array(x.length);
    const invstd = new Float64Array(groups);
    const gamma = this.weight?.value.data;
    const beta = this.bias?.value.data;
    for (let g = 0; g < groups; g++) {
      const base = g * k;
      let sum = 0;
      for (let i = 0; i < k; i++) sum += x[base + i]!;
      const mean = sum / k;
      let sq = 0;
      for (let i = 0; i < k; i++) {
        const d = x[base + i]! - mean;
        sq += d * d;
      }
      const inv = 1 / Math.sqrt(sq / k + this.eps);
      invstd[g] = inv;
      for (let i = 0; i < k; i++) {
        const h = (x[base + i]! - mean) * inv;
        xhat[base + i] = h;
        out[base + i] = gamma && beta ? h * gamma[i]! + beta[i]! : h;
      }
    }
    this.cache = { input, xhat, invstd };
    return new Tensor(out, input.shape);
  }

  backward(gradOutput: Tensor): Tensor {
    const { input, xhat, invstd } = requireCache(this.cache, this.kind);
    const k = this.groupSize;
    const groups = input.numel / k;
    const dy = gradOutput.data;
    const dx = new Float32Array(dy.length);
    const gamma = this.weight?.value.data;
    const dGamma = new Float64Array(k);
    const dBeta = new Float64Array(k);
    for (let g = 0; g < groups; g++) {
      const base = g * k;
      let sumDxhat = 0;
      let sumDxhatXhat = 0;
      for (let i = 0; i < k; i++) {
        const dxh = dy[base + i]! * (gamma ? gamma[i]! : 1);
        sumDxhat += dxh;
        sumDxhatXhat += dxh * xhat[base + i]!;
        dGamma[i] = dGamma[i]! + dy[base + i]! * xhat[base + i]!;
        dBeta[i] = dBeta[i]! + dy[base + i]!;
      }
      // dx = invstd/K · (K·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂)), with dx̂ = dy·γ.
      const inv = invstd[g]!;
      for (let i = 0; i < k; i++) {
        const dxh = dy[base + i]! * (gamma ? gamma[i]! : 1);
        dx[base + i] = (inv / k) * (k * dxh - sumDxhat - xhat[base + i]! * sumDxhatXhat);
      }
    }
    if (this.weight && this.bias) {
      for (let i = 0; i < k; i++) {
        this.weight.grad[i] = this.weight.grad[i]! + dGamma[i]!;
        this.bias.grad[i] = this.bias.grad[i]! + dBeta[i]!;
      }
    }
    return new Tensor(dx, input.shape);
  }
}
