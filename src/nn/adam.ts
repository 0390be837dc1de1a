import { Optimizer } from './optimizer.js';
import type { Parameter } from './parameter.js';

export interface AdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
}

/**
 * Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019) with PyTorch's update order
 * (torch/optim/adam.py and adamw.py, _single_tensor_*):
 *   Adam:  g ← g + λ·θ (L2 folded into the gradient, so it passes through the moments)
 *   AdamW: θ ← θ·(1 − lr·λ) (decoupled decay, applied before the moment update)
 *   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
 *   θ ← θ − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
 * Moments are float32, like PyTorch's state tensors.
 */
export class Adam extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decoupled: boolean = false;
  private readonly expAvg: Float32Array[];
  private readonly expAvgSq: Float32Array[];

  constructor(params: readonly Parameter[], options: AdamOptions = {}, defaultWeightDecay = 0) {
    super(params, options.lr ?? 1e-3);
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? defaultWeightDecay;
    this.expAvg = params.map((p) => new Float32Array(p.value.numel));
    this.expAvgSq = params.map((p) => new Float32Array(p.value.numel));
  }

  step(): void {
    this.stepCount += 1;
    const t = this.stepCount;
    const { beta1, beta2, eps, lr, weightDecay } = this;
    const stepSize = lr / (1 - beta1 ** t);
    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** t);
    const decay = 1 - lr * weightDecay;
    this.params.forEach((p, k) => {
      const theta = p.value.data;
      const grad = p.grad;
      const m = this.expAvg[k]!;
      const v = this.expAvgSq[k]!;
      for (let i = 0; i < theta.length; i++) {
        let g = grad[i]!;
        if (weightDecay !== 0) {
          if (this.decoupled) theta[i] = theta[i]! * decay;
          else g += weightDecay * theta[i]!;
        }
        m[i] = beta1 * m[i]! + (1 - beta1) * g;
        v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
        theta[i] = theta[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / biasCorrection2Sqrt + eps);
      }
    });
  }
}

/** AdamW: PyTorch's default weight decay is 0.01. */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;

  constructor(params: readonly Parameter[], options: AdamOptions = {}) {
    super(params, options, 0.01);
  }
}
