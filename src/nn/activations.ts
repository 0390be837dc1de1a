import {
  gelu,
  geluGrad,
  geluTanh,
  geluTanhGrad,
  relu,
  SELU_ALPHA,
  SELU_SCALE,
  selu,
  sigmoid,
} from './activation-functions.js';
import { Module, requireCache } from './module.js';
import { Tensor } from './tensor.js';

/**
 * An element-wise activation: forward applies f, backward multiplies by f'(x). Subclasses give
 * f and f' (from the input x and the output y, whichever is cheaper).
 */
abstract class ElementwiseActivation extends Module {
  protected cache: { input: Tensor; output: Tensor } | undefined;

  protected abstract f(x: number): number;
  protected abstract df(x: number, y: number): number;

  forward(input: Tensor): Tensor {
    const x = input.data;
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = this.f(x[i]!);
    const output = new Tensor(out, input.shape);
    this.cache = { input, output };
    return output;
  }

  backward(gradOutput: Tensor): Tensor {
    const { input, output } = requireCache(this.cache, this.kind);
    const x = input.data;
    const y = output.data;
    const g = gradOutput.data;
    const dx = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) dx[i] = g[i]! * this.df(x[i]!, y[i]!);
    return new Tensor(dx, input.shape);
  }
}

/** torch.nn.ReLU; the gradient at 0 is 0, as in PyTorch (threshold_backward). */
export class ReLU extends ElementwiseActivation {
  readonly kind = 'ReLU';
  protected f(x: number): number {
    return relu(x);
  }
  protected df(x: number): number {
    return x > 0 ? 1 : 0;
  }

  private readonly output = this.stepArray();
  private readonly inputGrad = this.stepArray();

  // The same loops with f and f' written in: the most common activation, without a call per element.
  override forward(input: Tensor): Tensor {
    const x = input.data;
    const out = this.output.take(x.length, this.kernels, this.reusing);
    for (let i = 0; i < x.length; i++) out[i] = relu(x[i]!);
    const output = new Tensor(out, input.shape);
    this.cache = { input, output };
    return output;
  }

  override backward(gradOutput: Tensor): Tensor {
    const x = requireCache(this.cache, this.kind).input.data;
    const g = gradOutput.data;
    const dx = this.inputGrad.take(x.length, this.kernels, this.reusing);
    for (let i = 0; i < x.length; i++) dx[i] = g[i]! * (x[i]! > 0 ? 1 : 0);
    return new Tensor(dx, gradOutput.shape);
  }
}

export class LeakyReLU extends ElementwiseActivation {
  readonly kind = 'LeakyReLU';
  readonly negativeSlope: number;
  constructor(options: { negativeSlope?: number } = {}) {
    super();
    this.negativeSlope = options.negativeSlope ?? 0.01;
  }
  protected f(x: number): number {
    return x > 0 ? x : x * this.negativeSlope;
  }
  protected df(x: number): number {
    return x > 0 ? 1 : this.negativeSlope;
  }
}

export type GeluApproximate = 'none' | 'tanh';

export class GELU extends ElementwiseActivation {
  readonly kind = 'GELU';
  readonly approximate: GeluApproximate;
  constructor(options: { approximate?: GeluApproximate } = {}) {
    super();
    this.approximate = options.approximate ?? 'none';
  }
  protected f(x: number): number {
    return this.approximate === 'tanh' ? geluTanh(x) : gelu(x);
  }
  protected df(x: number): number {
    return this.approximate === 'tanh' ? geluTanhGrad(x) : geluGrad(x);
  }
}

export class Tanh extends ElementwiseActivation {
  readonly kind = 'Tanh';
  protected f(x: number): number {
    return Math.tanh(x);
  }
  protected df(_x: number, y: number): number {
    return 1 - y * y;
  }
}

export class Sigmoid extends ElementwiseActivation {
  readonly kind = 'Sigmoid';
  protected f(x: number): number {
    return sigmoid(x);
  }
  protected df(_x: number, y: number): number {
    return y * (1 - y);
  }
}

export class SELU extends ElementwiseActivation {
  readonly kind = 'SELU';
  protected f(x: number): number {
    return selu(x);
  }
  protected df(x: number): number {
    return x > 0 ? SELU_SCALE : SELU_SCALE * SELU_ALPHA * Math.exp(x);
  }
}

/** torch.nn.Identity. */
export class Identity extends Module {
  readonly kind = 'Identity';
  forward(input: Tensor): Tensor {
    return input;
  }
  backward(gradOutput: Tensor): Tensor {
    return gradOutput;
  }
}
