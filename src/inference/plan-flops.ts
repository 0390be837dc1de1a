import type { CompiledPlan, PlanStep } from './plan.js';
import { stepTraits } from './plan.js';

/**
 * Floating-point operations per row of one step, as the engines count work (its op's
 * flopsPerRow, plan.ts). The wasm executor's threshold for splitting a batch across threads
 * (parallelMinFlops) and recalibration's bound on the work of one synchronous call both read it.
 */
export const stepFlopsPerRow = (step: PlanStep): number => stepTraits(step).flopsPerRow(step);

/** Floating-point operations per row of the whole plan (stepFlopsPerRow summed). */
export function planFlopsPerRow(plan: CompiledPlan): number {
  let flops = 0;
  for (const step of plan.steps) flops += stepFlopsPerRow(step);
  return flops;
}
