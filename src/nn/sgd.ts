import type { Kernels } from './kernels.js';
import { Optimizer } from './optimizer.js';
import type { Parameter } from './parameter.js';

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  /** Where the step runs (nn/kernels.ts; default the JavaScript reference). */
  kernels?: Kernels | undefined;
}

/**
 * What torch.optim.SGD refuses in these options (its ValueError, word for word), or undefined:
 * Nesterov momentum needs a momentum and no dampening. The training config's schema asks this too.
 */
export function sgdOptionsProblem(options: {
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
}): string | undefined {
  const { momentum = 0, dampening = 0, nesterov = false } = options;
  return nesterov && (momentum <= 0 || dampening !== 0)
    ? 'Nesterov momentum requires a momentum and zero dampening'
    : undefined;
}

/**
 * torch.optim.SGD's defaults but lr, which it requires (a training config's schema gives 1e-2):
 * the one place they are written.
 */
export const SGD_DEFAULTS = {
  momentum: 0,
  dampening: 0,
  weightDecay: 0,
  nesterov: false,
} as const;

/**
 * SGD as torch.optim.SGD (torch/optim/sgd.py, _single_tensor_sgd):
 *   g ← g + λ·θ;  b ← g on the first step, else b ← μ·b + (1 − dampening)·g;
 *   g ← g + μ·b (Nesterov) or g ← b;  θ ← θ − lr·g.
 */
export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  private readonly buffers: (Float32Array | undefined)[];

  constructor(params: readonly Parameter[], options: SgdOptions) {
    super(params, options.lr, options.kernels);
    this.momentum = options.momentum ?? SGD_DEFAULTS.momentum;
    this.dampening = options.dampening ?? SGD_DEFAULTS.dampening;
    this.weightDecay = options.weightDecay ?? SGD_DEFAULTS.weightDecay;
    this.nesterov = options.nesterov ?? SGD_DEFAULTS.nesterov;
    const problem = sgdOptionsProblem(this);
    if (problem !== undefined) throw new RangeError(problem);
    this.buffers = params.map(() => undefined);
  }

  step(): void {
    this.stepCount += 1;
    const { lr, momentum, dampening, weightDecay, nesterov } = this;
    this.params.forEach((p, k) => {
      let buf = this.buffers[k];
      const first = buf === undefined;
      if (momentum !== 0 && buf === undefined) {
        buf = this.kernels.allocate(p.value.numel);
        this.buffers[k] = buf;
      }
      this.kernels.sgdStep(p.value.data, p.grad, buf, {
        lr,
        weightDecay,
        momentum,
        oneMinusDampening: 1 - dampening,
        first,
        nesterov,
      });
    });
  }
}
