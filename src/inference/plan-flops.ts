import { ACT_NONE, activationCode } from './kernels.js';
import type { CompiledPlan, PlanStep } from './plan.js';

/**
 * Floating-point operations per row of one step, as the engines count work: 2·in·out for a dense
 * step (a multiply and an add per weight), 2·(weights)·positions for a convolution, 2 per value
 * of an affine step and of a residual add, 8 per value of a LayerNorm, a read per input value of
 * a pool (plus its fused activation), one per value of an activation. The wasm executor's
 * threshold for splitting a batch across threads (parallelMinFlops) and recalibration's bound on
 * the work of one synchronous call both read it.
 */
export function stepFlopsPerRow(step: PlanStep): number {
  switch (step.op) {
    case 'dense':
      return 2 * step.inFeatures * step.outFeatures;
    case 'affine':
      return 2 * step.channels * step.spatial;
    case 'layernorm':
      return 8 * step.groups * step.groupSize;
    case 'conv2d':
      return 2 * step.weight.length * step.geometry.outH * step.geometry.outW;
    case 'maxpool2d':
    case 'avgpool2d': {
      const win = step.windows;
      const activation =
        activationCode(step.activation) !== ACT_NONE ? step.channels * win.outH * win.outW : 0;
      return step.channels * win.inH * win.inW + activation;
    }
    case 'save_skip':
      return 0;
    case 'add_skip':
      return 2 * step.features;
    case 'activation':
      return step.features;
  }
}

/** Floating-point operations per row of the whole plan (stepFlopsPerRow summed). */
export function planFlopsPerRow(plan: CompiledPlan): number {
  let flops = 0;
  for (const step of plan.steps) flops += stepFlopsPerRow(step);
  return flops;
}
