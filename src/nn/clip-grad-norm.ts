import type { Parameter } from './parameter.js';

/**
 * torch.nn.utils.clip_grad_norm_ with the L2 norm: scales all gradients by
 * maxNorm / (‖g‖ + 1e-6) when that factor is below 1. Returns the total norm before clipping.
 * PyTorch (torch/nn/utils/clip_grad.py) multiplies by clamp(coefficient, max=1) unconditionally,
 * so a NaN norm makes every gradient NaN and an infinite one zeroes the finite gradients: a
 * factor that is not ≥ 1 (NaN included) scales here too.
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
