import type { BatchNormInput, CompiledPlan } from './plan.js';
import type { ChannelSums, StatisticsTap, TapClip } from './statistics-probe.js';

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

/** A BatchNorm's running statistics (running_mean, running_var) and its ε. */
export interface RunningMoments {
  mean: ArrayLike<number>;
  variance: ArrayLike<number>;
  eps: number;
}

/**
 * The clip that winsorizes a BatchNorm's input x at running_mean_c ± sigmas·√(running_var_c + ε)
 * per channel, in the units of the tapped values y (x = y·scale + shift: y = (x − shift)/scale,
 * the bounds swapped where scale < 0), rounded to float32. Clipping y there clips x there: the
 * map is monotone per channel. A channel whose bounds cannot be stated — a zero or non-finite
 * scale, running statistics that are not finite — gets −∞ … +∞: it is left unclipped.
 */
export function batchNormClip(
  input: BatchNormInput,
  running: RunningMoments,
  sigmas: number,
): TapClip {
  const lower = new Float32Array(input.channels).fill(Number.NEGATIVE_INFINITY);
  const upper = new Float32Array(input.channels).fill(Number.POSITIVE_INFINITY);
  for (let c = 0; c < input.channels; c++) {
    const half = sigmas * Math.sqrt(running.variance[c]! + running.eps);
    const scale = input.scale?.[c] ?? 1;
    const shift = input.shift?.[c] ?? 0;
    const a = (running.mean[c]! - half - shift) / scale;
    const b = (running.mean[c]! + half - shift) / scale;
    if (!Number.isFinite(a) || !Number.isFinite(b) || scale === 0) continue;
    lower[c] = Math.min(a, b);
    upper[c] = Math.max(a, b);
  }
  return { lower, upper };
}

/**
 * A mean of a BatchNorm's input per channel (running_mean, or a mean measured before) in the units
 * of the tapped values, y = (x − shift)/scale: the shift a tap's sums are best taken about
 * (ChannelSums: the closer to the mean of what the tap reads, the fewer digits the variance
 * loses). A channel the map cannot say (zero or non-finite scale, a mean that is not finite)
 * gets 0.
 */
export function batchNormShift(input: BatchNormInput, mean: ArrayLike<number>): Float64Array {
  const out = new Float64Array(input.channels);
  for (let c = 0; c < input.channels; c++) {
    const k = (mean[c]! - (input.shift?.[c] ?? 0)) / (input.scale?.[c] ?? 1);
    out[c] = Number.isFinite(k) ? k : 0;
  }
  return out;
}

/**
 * The taps of these BatchNorms' inputs, each winsorized at its own running statistics
 * (batchNormClip; running[i] belongs to inputs[i]) and summed about its running_mean
 * (batchNormShift): what live drift reads. Every value summed is then within `sigmas` running σ
 * of its shift (σ² = running_var + ε), so Σ(x − K)² ≤ n·sigmas²·σ² and a batch's variance M2/n
 * rounds by at most 3·n·u·sigmas²·σ² (ChannelSums.moments, u = 2^−53): 3.5e−10 of the running
 * variance for 4,096 values at 16 σ, 2.7e−7 for 4,096 rows of 28 × 28 planes — a drift statistic
 * needs no better, and the request path takes no second pass.
 */
export function clippedBatchNormTaps(
  inputs: readonly BatchNormInput[],
  running: readonly RunningMoments[],
  sigmas: number,
): StatisticsTap[] {
  return batchNormTaps(inputs).map((tap, i) => ({
    ...tap,
    clip: batchNormClip(inputs[i]!, running[i]!, sigmas),
    shift: batchNormShift(inputs[i]!, running[i]!.mean),
  }));
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
