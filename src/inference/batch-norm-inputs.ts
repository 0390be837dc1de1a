import type { BatchNormInput, CompiledPlan } from './plan.js';
import type { ChannelSums, StatisticsTap } from './statistics-probe.js';

/** Per-channel count, mean and M2 = Σ(x − mean)² of one BatchNorm's input. */
export interface InputMoments {
  count: number;
  mean: Float64Array;
  m2: Float64Array;
}

/**
 * The BatchNorms of `paths` (all of them by default) as the plan records them, in network order;
 * an Error names a path the plan does not compile or cannot observe.
 */
export function batchNormInputsOf(plan: CompiledPlan, paths?: readonly string[]): BatchNormInput[] {
  const wanted = paths ?? plan.batchNormInputs.map((b) => b.path);
  return wanted.map((path) => {
    const input = plan.batchNormInputs.find((b) => b.path === path);
    if (!input) throw new Error(`the plan compiles no BatchNorm ${path}`);
    if (!input.tap)
      throw new Error(`the input of BatchNorm ${path} cannot be read: ${input.reason}`);
    return input;
  });
}

/** The taps that read these BatchNorms' inputs (one per BatchNorm; for Executor.createProbe). */
export function batchNormTaps(inputs: readonly BatchNormInput[]): StatisticsTap[] {
  return inputs.map((b) => {
    if (!b.tap) throw new Error(`the input of BatchNorm ${b.path} cannot be read: ${b.reason}`);
    return b.tap;
  });
}

/**
 * The moments of a BatchNorm's input from its tap's sums, through the recorded map
 * x = y·scale + shift: mean_x = scale·mean_y + shift, M2_x = scale²·M2_y per channel. `into`
 * receives them instead of new arrays.
 */
export function batchNormMoments(
  input: BatchNormInput,
  sums: ChannelSums,
  into?: { mean: Float64Array; m2: Float64Array },
): InputMoments {
  const { count, mean, m2 } = sums.moments(into);
  const { scale, shift } = input;
  if (scale && shift) {
    for (let c = 0; c < mean.length; c++) {
      mean[c] = scale[c]! * mean[c]! + shift[c]!;
      m2[c] = scale[c]! * scale[c]! * m2[c]!;
    }
  }
  return { count, mean, m2 };
}
