import { Module, requireCache } from './module.js';
import { Rng } from './rng.js';
import { Tensor } from './tensor.js';

/**
 * What both dropouts share: the probability p, the random stream, the identity in eval (and for
 * p = 0), and the backward pass, y = x·mask + c so ∂y/∂x is the per-element mask.
 */
abstract class DropoutBase extends Module {
  readonly p: number;
  protected readonly rng: Rng;
  private mask: Float32Array | undefined;
  private readonly arrays = {
    output: this.stepArray(),
    mask: this.stepArray(),
    inputGrad: this.stepArray(),
  };

  constructor(options: { p?: number }, rng: Rng) {
    super();
    const p = options.p ?? 0.5;
    if (!(p >= 0 && p <= 1)) {
      throw new RangeError(`dropout probability has to be between 0 and 1, but got ${p}`);
    }
    this.p = p;
    this.rng = rng;
  }

  /** Writes every element of the train-mode output and of the per-element gradient factor (0 < p < 1). */
  protected abstract sample(x: Float32Array, out: Float32Array, mask: Float32Array): void;

  forward(input: Tensor): Tensor {
    if (!this.training || this.p === 0) {
      this.mask = undefined;
      return input;
    }
    const x = input.data;
    const out = this.arrays.output.take(x.length, this.kernels, this.reusing);
    const mask = this.arrays.mask.take(x.length, this.kernels, this.reusing);
    if (this.p < 1) this.sample(x, out, mask);
    else {
      // p = 1: every element dropped; ATen multiplies by zero (so NaN and ±Inf give NaN).
      for (let i = 0; i < x.length; i++) out[i] = x[i]! * 0;
      mask.fill(0);
    }
    this.mask = mask;
    return new Tensor(out, input.shape);
  }

  backward(gradOutput: Tensor): Tensor {
    if (!this.training || this.p === 0) return gradOutput;
    const mask = requireCache(this.mask, this.kind);
    const g = gradOutput.data;
    const dx = this.arrays.inputGrad.take(g.length, this.kernels, this.reusing);
    for (let i = 0; i < g.length; i++) dx[i] = g[i]! * mask[i]!;
    return new Tensor(dx, gradOutput.shape);
  }
}

/**
 * torch.nn.Dropout, inverted: in training each element is zeroed with probability p and the
 * survivors are scaled by 1/(1 − p), so eval is the identity.
 */
export class Dropout extends DropoutBase {
  readonly kind = 'Dropout';

  constructor(options: { p?: number } = {}, rng: Rng = new Rng(0)) {
    super(options, rng);
  }

  protected sample(x: Float32Array, out: Float32Array, mask: Float32Array): void {
    const keep = 1 - this.p;
    // ATen's _dropout_impl (aten/src/ATen/native/Dropout.cpp) builds a float32 noise tensor,
    // bernoulli_(1 − p).div_(1 − p), and multiplies: the scale is the float32 quotient
    // 1 / float32(1 − p), and x·scale rounds once to float32 (exact in double before that).
    const scale = Math.fround(1 / Math.fround(keep));
    for (let i = 0; i < x.length; i++) {
      if (this.rng.next() < keep) {
        mask[i] = scale;
        out[i] = x[i]! * scale;
      } else {
        // x·0 as ATen's multiply gives it: ±0, or NaN for a non-finite x.
        mask[i] = 0;
        out[i] = x[i]! * 0;
      }
    }
  }
}

/**
 * torch.nn.AlphaDropout for SELU networks (Klambauer et al. 2017). Following ATen's
 * _dropout_impl (aten/src/ATen/native/Dropout.cpp): dropped elements are set to the SELU
 * saturation value α' = −λα and the result is affinely corrected, y = a·(x·keep + α'(1 − keep))
 * + b, with a = ((1 − p)(1 + p·α'²))^(−1/2) and b = −a·α'·p, so mean and variance are kept.
 */
export class AlphaDropout extends DropoutBase {
  readonly kind = 'AlphaDropout';

  /** λα of SELU, ATen's `alpha` constant. */
  static readonly ALPHA = 1.7580993408473766;

  constructor(options: { p?: number } = {}, rng: Rng = new Rng(0)) {
    super(options, rng);
  }

  protected sample(x: Float32Array, out: Float32Array, mask: Float32Array): void {
    const p = this.p;
    const alpha = AlphaDropout.ALPHA;
    const a = 1 / Math.sqrt((alpha * alpha * p + 1) * (1 - p));
    const keep = 1 - p;
    // ATen works on float32 tensors with the scalars a, α·a and α·a·p rounded to float32:
    // b = (noise − 1)·(α·a) + α·a·p; noise·a; y = x·(noise·a) + b, each operation rounded.
    const scale = Math.fround(a);
    const shiftKept = Math.fround(alpha * a * p);
    const dropped = Math.fround(shiftKept - Math.fround(alpha * a));
    for (let i = 0; i < x.length; i++) {
      if (this.rng.next() < keep) {
        mask[i] = scale;
        out[i] = Math.fround(x[i]! * scale) + shiftKept;
      } else {
        mask[i] = 0;
        out[i] = x[i]! * 0 + dropped;
      }
    }
  }
}
