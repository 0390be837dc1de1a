import type { AdamStep, Kernels } from './kernels.js';
import { Optimizer } from './optimizer.js';
import type { Parameter } from './parameter.js';

/**
 * torch.optim.Adam's and AdamW's defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8; weight decay 0
 * for Adam, 0.01 for AdamW): the one place they are written, for these classes and a training
 * config's schema alike.
 */
export const ADAM_DEFAULTS = {
  lr: 1e-3,
  betas: [0.9, 0.999] as const,
  eps: 1e-8,
  weightDecay: 0,
  adamwWeightDecay: 0.01,
} as const;

export interface AdamOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  /** Where the step runs (nn/kernels.ts; default the JavaScript reference): the moments live there. */
  kernels?: Kernels | undefined;
}

/**
 * Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019) with PyTorch's update order
 * (torch/optim/adam.py and adamw.py, _single_tensor_*):
 *   Adam:  g ← g + λ·θ (L2 folded into the gradient, so it passes through the moments)
 *   AdamW: θ ← θ·(1 − lr·λ) (decoupled decay, applied before the moment update)
 *   m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
 *   θ ← θ − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
 * Moments are float32, like PyTorch's state tensors. The loop is Kernels.adamStep.
 */
export class Adam extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  protected readonly decoupled: boolean = false;
  private readonly expAvg: Float32Array[];
  private readonly expAvgSq: Float32Array[];

  constructor(
    params: readonly Parameter[],
    options: AdamOptions = {},
    defaultWeightDecay: number = ADAM_DEFAULTS.weightDecay,
  ) {
    super(params, options.lr ?? ADAM_DEFAULTS.lr, options.kernels);
    [this.beta1, this.beta2] = options.betas ?? ADAM_DEFAULTS.betas;
    this.eps = options.eps ?? ADAM_DEFAULTS.eps;
    this.weightDecay = options.weightDecay ?? defaultWeightDecay;
    this.expAvg = params.map((p) => this.kernels.allocate(p.value.numel));
    this.expAvgSq = params.map((p) => this.kernels.allocate(p.value.numel));
  }

  step(): void {
    this.stepCount += 1;
    const t = this.stepCount;
    const { beta1, beta2, eps, lr, weightDecay } = this;
    const step: AdamStep = {
      mode: weightDecay === 0 ? 0 : this.decoupled ? 1 : 2,
      decay: 1 - lr * weightDecay,
      weightDecay,
      beta1,
      oneMinusBeta1: 1 - beta1,
      beta2,
      oneMinusBeta2: 1 - beta2,
      stepSize: lr / (1 - beta1 ** t),
      biasCorrection2Sqrt: Math.sqrt(1 - beta2 ** t),
      eps,
    };
    this.params.forEach((p, k) => {
      this.kernels.adamStep(p.value.data, p.grad, this.expAvg[k]!, this.expAvgSq[k]!, step);
    });
  }
}

/** AdamW: PyTorch's default weight decay is 0.01. */
export class AdamW extends Adam {
  protected override readonly decoupled: boolean = true;

  constructor(params: readonly Parameter[], options: AdamOptions = {}) {
    super(params, options, ADAM_DEFAULTS.adamwWeightDecay);
  }
}
