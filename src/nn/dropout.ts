import { Module, requireCache } from './module.js';
import { Rng } from './rng.js';
import { Tensor } from './tensor.js';

/** ∂y/∂x of both dropouts is the per-element factor each kept (mask) or zeroed. */
function scaleByMask(gradOutput: Tensor, mask: Float32Array): Tensor {
  const g = gradOutput.data;
  const dx = new Float32Array(g.length);
  for (let i = 0; i < g.length; i++) dx[i] = g[i]! * mask[i]!;
  return new Tensor(dx, gradOutput.shape);
}

function checkProbability(p: number): number {
  if (!(p >= 0 && p <= 1))
    throw new RangeError(`dropout probability has to be between 0 and 1, but got ${p}`);
  return p;
}

/**
 * torch.nn.Dropout, inverted: in training each element is zeroed with probability p and the
 * survivors are scaled by 1/(1 − p), so eval is the identity.
 */
export class Dropout extends Module {
  readonly kind = 'Dropout';
  readonly p: number;
  private readonly rng: Rng;
  private mask: Float32Array | undefined;

  constructor(options: { p?: number } = {}, rng: Rng = new Rng(0)) {
    super();
    this.p = checkProbability(options.p ?? 0.5);
    this.rng = rng;
  }

  forward(input: Tensor): Tensor {
    if (!this.training || this.p === 0) {
      this.mask = undefined;
      return input;
    }
    const x = input.data;
    const mask = new Float32Array(x.length);
    const out = new Float32Array(x.length);
    if (this.p < 1) {
      const keep = 1 - this.p;
      const scale = 1 / keep;
      for (let i = 0; i < x.length; i++) {
        if (this.rng.next() < keep) {
          mask[i] = scale;
          out[i] = x[i]! * scale;
        }
      }
    }
    this.mask = mask;
    return new Tensor(out, input.shape);
  }

  backward(gradOutput: Tensor): Tensor {
    if (!this.training || this.p === 0) return gradOutput;
    return scaleByMask(gradOutput, requireCache(this.mask, this.kind));
  }
}

/**
 * torch.nn.AlphaDropout for SELU networks (Klambauer et al. 2017). Following ATen's
 * _dropout_impl (aten/src/ATen/native/Dropout.cpp): dropped elements are set to the SELU
 * saturation value α' = −λα and the result is affinely corrected, y = a·(x·keep + α'(1 − keep))
 * + b, with a = ((1 − p)(1 + p·α'²))^(−1/2) and b = −a·α'·p, so mean and variance are kept.
 */
export class AlphaDropout extends Module {
  readonly kind = 'AlphaDropout';
  readonly p: number;
  private readonly rng: Rng;
  private mask: Float32Array | undefined;

  /** λα of SELU, ATen's `alpha` constant. */
  static readonly ALPHA = 1.7580993408473766;

  constructor(options: { p?: number } = {}, rng: Rng = new Rng(0)) {
    super();
    this.p = checkProbability(options.p ?? 0.5);
    this.rng = rng;
  }

  forward(input: Tensor): Tensor {
    if (!this.training || this.p === 0) {
      this.mask = undefined;
      return input;
    }
    const x = input.data;
    const out = new Float32Array(x.length);
    const mask = new Float32Array(x.length);
    if (this.p < 1) {
      const p = this.p;
      const alpha = AlphaDropout.ALPHA;
      const a = 1 / Math.sqrt((alpha * alpha * p + 1) * (1 - p));
      const keep = 1 - p;
      for (let i = 0; i < x.length; i++) {
        const kept = this.rng.next() < keep ? 1 : 0;
        // ATen: b = (noise − 1)·α·a + α·a·p; y = x·noise·a + b.
        const b = (kept - 1) * alpha * a + alpha * a * p;
        mask[i] = kept * a;
        out[i] = x[i]! * kept * a + b;
      }
    }
    this.mask = mask;
    return new Tensor(out, input.shape);
  }

  backward(gradOutput: Tensor): Tensor {
    if (!this.training || this.p === 0) return gradOutput;
    return scaleByMask(gradOutput, requireCache(this.mask, this.kind));
  }
}
