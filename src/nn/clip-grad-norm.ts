import type { Parameter } from './parameter.js';

/**
 * torch.nn.utils.clip_grad_norm_ with the L2 norm: scales all gradients by
 * maxNorm / (‖g‖ + 1e-6) when that factor is below 1. Returns the total norm before clipping.
 * PyTorch (torch/nn/utils/clip_grad.py) multiplies by clamp(coefficient, max=1) unconditionally,
 * so a NaN norm makes every gradient NaN and an infinite one zeroes the finite gradients: a
 * factor that is not ≥ 1 (NaN included) scales here too.
 *
 * The norm and the factor are float64 here, float32 in PyTorch, whose reductions round in their
 * own order: on 15,000 randn gradients its norm lies 2 float32 ulp from the exact one, and the
 * clipped gradients differ from PyTorch's by up to 3 ulp (review52). Rounding each step to
 * float32 as PyTorch does (tried) still left them up to 4 ulp apart, as the norm's reduction
 * order is PyTorch's own; so the exact arithmetic stays. A network whose steps amplify such
 * differences drifts from PyTorch's run as PyTorch's own runs drift between thread counts.
 */
export function clipGradNorm(params: readonly Parameter[], maxNorm: number): number {
  let sumSq = 0;
  for (const p of params) for (const g of p.grad) sumSq += g * g;
  const total = Math.sqrt(sumSq);
  const coef = maxNorm / (total + 1e-6);
  if (!(coef >= 1)) {
    for (const p of params) {
      const g = p.grad;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * coef;
    }
  }
  return total;
}
