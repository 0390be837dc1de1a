import type { CompiledPlan } from './plan.js';
import { stepOutputWidth } from './plan.js';

/**
 * Statistics gathered while an executor runs a plan: per-channel float64 sums of tensors between
 * steps, accumulated by the executor itself over its batch buffers (nothing is materialised
 * beyond them). This is the one statistics path of normserve: recalibration reads BatchNorm
 * inputs through it, and live drift statistics use the same taps on the served plan.
 */

/**
 * Which values of a step a tap reads: what it stores (after its activation: what the next step
 * reads), or the same values before its activation (a BatchNorm folded into the step is its
 * pre-activation output).
 */
export type TapPoint = 'output' | 'pre_activation';

/**
 * Per channel of a tap, the interval its values are winsorized to before they are summed: a finite
 * value below lower[c] counts as lower[c], one above upper[c] as upper[c]; ±∞ and NaN count as
 * NaN, so that sums with a value that overflowed stay not finite, as unclipped. Float32, in
 * the units of the tapped tensor, so that every executor compares the same float32 values with
 * the same bounds. Live drift statistics bound a row's influence with it
 * (batch-norm-inputs.ts: batchNormClip); recalibration's taps have none: PyTorch's statistics.
 */
export interface TapClip {
  lower: Float32Array;
  upper: Float32Array;
}

/** A tensor of the plan whose per-channel sums are gathered. */
export interface StatisticsTap {
  /** Index of the step in plan.steps whose tensor is read; −1: the plan's input (raw rows). */
  step: number;
  /** 'output' (the default reading) or 'pre_activation'; the input has only 'output'. */
  point: TapPoint;
  /**
   * Channels of a row: the row's values are `channels` runs of width/channels consecutive values
   * (NCHW; a channel of a [C, H, W] tensor is its H·W plane), summed per run. Per feature:
   * channels = width.
   */
  channels: number;
  /** Winsorize each value at its channel's bounds before it is summed; none: the exact values. */
  clip?: TapClip;
}

/**
 * Σx and Σx² per channel in float64 over every value read since the last reset; `count` is the
 * number of values per channel (rows × spatial size).
 */
export class ChannelSums {
  count = 0;
  readonly sum: Float64Array;
  readonly sumSquares: Float64Array;

  constructor(readonly channels: number) {
    this.sum = new Float64Array(channels);
    this.sumSquares = new Float64Array(channels);
  }

  reset(): void {
    this.count = 0;
    this.sum.fill(0);
    this.sumSquares.fill(0);
  }

  /**
   * Mean and M2 = Σ(x − mean)² per channel: M2 = Σx² − mean·Σx in float64. Exact enough for a
   * batch of float32 values (squares of float32 values are exact in float64; the cancellation
   * costs log10(mean²/variance) of float64's 16 digits, far below float32's resolution of the
   * values themselves); merge batches with Chan's pairwise update, not by adding sums forever.
   * `into` receives them instead of new arrays (a caller on the request path allocates nothing).
   */
  moments(into?: { mean: Float64Array; m2: Float64Array }): {
    count: number;
    mean: Float64Array;
    m2: Float64Array;
  } {
    const n = this.count;
    const mean = into?.mean ?? new Float64Array(this.channels);
    const m2 = into?.m2 ?? new Float64Array(this.channels);
    if (n === 0) {
      mean.fill(0, 0, this.channels);
      m2.fill(0, 0, this.channels);
      return { count: 0, mean, m2 };
    }
    for (let c = 0; c < this.channels; c++) {
      const m = this.sum[c]! / n;
      mean[c] = m;
      m2[c] = Math.max(0, this.sumSquares[c]! - m * this.sum[c]!);
    }
    return { count: n, mean, m2 };
  }
}

/**
 * A set of taps bound to one executor (Executor.createProbe), with one ChannelSums per tap that
 * each run or accumulate call adds to. Reset it to start over.
 */
export interface StatisticsProbe {
  readonly taps: readonly StatisticsTap[];
  /** sums[i] belongs to taps[i] (taps of the same tensor and reading share one). */
  readonly sums: readonly ChannelSums[];
  reset(): void;
}

/** Values per row of the tensor a tap reads. */
export function tappedWidth(plan: CompiledPlan, step: number): number {
  return step < 0 ? plan.inputWidth : stepOutputWidth(plan.steps[step]!);
}

/**
 * The natural channel count of each tensor of a plan — index 0 the input, i + 1 step i's output:
 * C of a [C, H, W] tensor, the width of a flat one. A tap may ask for these or coarser channels
 * (executors size their accumulators by them).
 */
export function tensorChannels(plan: CompiledPlan): number[] {
  const out = [plan.inputShape.length === 3 ? plan.inputShape[0]! : plan.inputWidth];
  let previous = out[0]!;
  let previousWidth = plan.inputWidth;
  for (const step of plan.steps) {
    const width = stepOutputWidth(step);
    let channels: number;
    switch (step.op) {
      case 'dense':
        channels = step.outFeatures;
        break;
      case 'conv2d':
        channels = step.outChannels;
        break;
      case 'affine':
      case 'maxpool2d':
      case 'avgpool2d':
        channels = step.channels;
        break;
      default:
        // Element-wise steps keep the layout of what they read.
        channels = width === previousWidth ? previous : width;
    }
    out.push(channels);
    previous = channels;
    previousWidth = width;
  }
  return out;
}

/**
 * Throws a RangeError unless every tap reads a tensor of the plan with a channel count that
 * divides its width and is no finer than the tensor's natural channels.
 */
export function checkTaps(plan: CompiledPlan, taps: readonly StatisticsTap[]): void {
  const natural = tensorChannels(plan);
  const seen = new Map<string, number>();
  taps.forEach((tap, i) => {
    const where = `tap ${i} (step ${tap.step}, ${tap.point})`;
    if (!Number.isInteger(tap.step) || tap.step < -1 || tap.step >= plan.steps.length)
      throw new RangeError(`${where}: no such step (the plan has ${plan.steps.length})`);
    if (tap.point !== 'output' && tap.point !== 'pre_activation')
      throw new RangeError(`${where}: point must be 'output' or 'pre_activation'`);
    if (tap.step < 0 && tap.point !== 'output')
      throw new RangeError(`${where}: the input has no activation`);
    const width = tappedWidth(plan, tap.step);
    const max = natural[tap.step + 1]!;
    if (!Number.isInteger(tap.channels) || tap.channels < 1 || width % tap.channels !== 0)
      throw new RangeError(`${where}: ${tap.channels} channels do not divide a width of ${width}`);
    if (tap.channels > max)
      throw new RangeError(`${where}: ${tap.channels} channels are finer than the tensor's ${max}`);
    if (
      tap.clip &&
      (tap.clip.lower.length !== tap.channels ||
        tap.clip.upper.length !== tap.channels ||
        tap.clip.lower.some((lo, c) => !(lo <= tap.clip!.upper[c]!)))
    )
      throw new RangeError(
        `${where}: clip needs ${tap.channels} lower and upper bounds with lower ≤ upper`,
      );
    const key = `${tap.step}/${tap.point}`;
    const other = seen.get(key);
    if (other !== undefined && other !== tap.channels)
      throw new RangeError(`${where}: the same tensor is tapped with ${other} channels too`);
    seen.set(key, tap.channels);
  });
}

/** Index of a tap's tensor and reading: 2·(step + 1) + (pre_activation ? 1 : 0). */
export const tapPosition = (tap: StatisticsTap): number =>
  2 * (tap.step + 1) + (tap.point === 'pre_activation' ? 1 : 0);

/**
 * One ChannelSums per tap; taps reading the same tensor the same way with the same clip (two
 * BatchNorms folded into one step, unclipped) share theirs, so the executor sums that tensor once.
 * Clipped taps of one tensor with other bounds (each BatchNorm's own running statistics) each
 * have their own.
 */
export function sharedSums(taps: readonly StatisticsTap[]): ChannelSums[] {
  const byPosition = new Map<number, Map<TapClip | undefined, ChannelSums>>();
  return taps.map((t) => {
    const key = tapPosition(t);
    let byClip = byPosition.get(key);
    if (!byClip) {
      byClip = new Map();
      byPosition.set(key, byClip);
    }
    let sums = byClip.get(t.clip);
    if (!sums) {
      sums = new ChannelSums(t.channels);
      byClip.set(t.clip, sums);
    }
    return sums;
  });
}

/** Steps a call must run for these taps: through the last tapped step (0: only the input). */
export function stepsNeeded(taps: readonly StatisticsTap[]): number {
  return taps.reduce((n, t) => Math.max(n, t.step + 1), 0);
}

/**
 * The JavaScript executor's tap: adds rows × width values of `x` (row-major, float32 values held
 * in float64) into `sums`, per run of width/channels values; with `clip`, each finite value
 * winsorized at its channel's bounds first, and ±∞ and NaN made NaN (as the wasm engine).
 */
export function addChannelSums(
  x: Float64Array,
  rows: number,
  width: number,
  sums: ChannelSums,
  clip?: TapClip,
): void {
  const channels = sums.channels;
  const spatial = width / channels;
  const sum = sums.sum;
  const sq = sums.sumSquares;
  if (clip) {
    const { lower, upper } = clip;
    let i = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < channels; c++) {
        const lo = lower[c]!;
        const hi = upper[c]!;
        let s = 0;
        let q = 0;
        for (let k = 0; k < spatial; k++, i++) {
          const x0 = x[i]!;
          // + x0·0: NaN for ±∞ and NaN (the sums stay not finite), +0 otherwise.
          const v = (x0 < lo ? lo : Math.min(hi, x0)) + x0 * 0;
          s += v;
          q += v * v;
        }
        sum[c] = sum[c]! + s;
        sq[c] = sq[c]! + q;
      }
    }
  } else if (spatial === 1) {
    for (let r = 0; r < rows; r++) {
      const base = r * width;
      for (let c = 0; c < channels; c++) {
        const v = x[base + c]!;
        sum[c] = sum[c]! + v;
        sq[c] = sq[c]! + v * v;
      }
    }
  } else {
    let i = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < channels; c++) {
        let s = 0;
        let q = 0;
        for (let k = 0; k < spatial; k++, i++) {
          const v = x[i]!;
          s += v;
          q += v * v;
        }
        sum[c] = sum[c]! + s;
        sq[c] = sq[c]! + q;
      }
    }
  }
  sums.count += rows * spatial;
}
