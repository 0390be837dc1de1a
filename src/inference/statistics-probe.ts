import type { CompiledPlan } from './plan.js';
import { stepOutputWidth, stepTraits } from './plan.js';

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
  /**
   * Per channel, the shift K the sums are taken about (Σ(x − K), Σ(x − K)²; ChannelSums), in the
   * units of the tapped values; none: 0. Taps sharing their sums take the first one's.
   */
  shift?: ArrayLike<number>;
}

/**
 * The unit roundoff of float64, 2^−53: a sum of n terms rounds by at most (n − 1)·u times the sum
 * of their magnitudes (Higham, "Accuracy and Stability of Numerical Algorithms", 2002, §4.2),
 * whatever the order the executors add them in.
 */
const FLOAT64_UNIT_ROUNDOFF = 2 ** -53;

/**
 * The relative error of a chunk's M2 that ChannelSums.shiftTooFar accepts: float32's unit
 * roundoff, 2^−24, so that the float64 sums never cost a digit of the float32 running_var they
 * become. A chunk whose bound exceeds it is measured again about its own mean (recalibration).
 */
export const M2_RELATIVE_TOLERANCE = 2 ** -24;

/**
 * Σ(x − K) and Σ(x − K)² per channel in float64 over every value read since the last reset, about
 * a per-channel shift K known before the pass (`shift`, 0 unless set: the tap's shift, or
 * shiftTo); `count` is the number of values per channel (rows × spatial size). The shift is what
 * keeps M2 = Σ(x − K)² − (Σ(x − K))²/n accurate when a channel's mean is large against its spread
 * (moments).
 */
export class ChannelSums {
  count = 0;
  readonly sum: Float64Array;
  readonly sumSquares: Float64Array;
  readonly shift: Float64Array;

  constructor(readonly channels: number) {
    this.sum = new Float64Array(channels);
    this.sumSquares = new Float64Array(channels);
    this.shift = new Float64Array(channels);
  }

  /** Back to no values; the shift stays. */
  reset(): void {
    this.count = 0;
    this.sum.fill(0);
    this.sumSquares.fill(0);
  }

  /**
   * Takes the sums about `shift` (per channel; a value that is not finite counts as 0) from now
   * on; the sums must be empty (after reset: the executors' probes do it in reset(shifts)).
   */
  shiftTo(shift: ArrayLike<number>): void {
    if (this.count !== 0) throw new Error('shiftTo: the sums hold values (reset them first)');
    for (let c = 0; c < this.channels; c++) {
      const k = shift[c] ?? 0;
      this.shift[c] = Number.isFinite(k) ? k : 0;
    }
  }

  /**
   * Mean and M2 = Σ(x − mean)² per channel, from the sums about K: with m = Σ(x − K)/n,
   * mean = K + m and M2 = Σ(x − K)² − m·Σ(x − K) in float64. The subtraction cancels: Σ(x − K)²
   * = M2 + n·(mean − K)², so its rounding, at most about 3·n·u·Σ(x − K)² (u = 2^−53: the two
   * sums' (n − 1)·u each and the product's), costs log10(1 + (mean − K)²/variance) of float64's
   * 16 digits — all of them for a mean of 1e5 ± 0.01 about K = 0 (14 digits), none about a K
   * near the mean (shiftTooFar says when it was not near enough). Merge batches with Chan's
   * pairwise update, not by adding sums forever. `into` receives them instead of new arrays (a
   * caller on the request path allocates nothing).
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
      mean[c] = this.shift[c]! + m;
      m2[c] = Math.max(0, this.sumSquares[c]! - m * this.sum[c]!);
    }
    return { count: n, mean, m2 };
  }

  /**
   * Whether the bound of moments' rounding, 3·n·u·Σ(x − K)², exceeds M2_RELATIVE_TOLERANCE · M2
   * on some finite channel: the shift was too far from the mean for these values ((mean −
   * K)²/variance above about 2^−24/(3·n·u) − 1: 43,690 for 4,096 values, 54.7 for 4,096 rows of
   * 28 × 28 planes, n = 3,211,264); measured again about their own mean, they meet it (moments' mean is within
   * a few float64 roundings of the true one). A channel whose values are all equal to K (M2 = 0,
   * Σ(x − K)² = 0) meets it.
   */
  shiftTooFar(): boolean {
    const n = this.count;
    const bound = 3 * n * FLOAT64_UNIT_ROUNDOFF;
    for (let c = 0; c < this.channels; c++) {
      const q = this.sumSquares[c]!;
      const m2 = q - (this.sum[c]! / n) * this.sum[c]!;
      if (bound * q > M2_RELATIVE_TOLERANCE * m2 && Number.isFinite(q)) return true;
    }
    return false;
  }
}

/**
 * A set of taps bound to one executor (Executor.createProbe), with one ChannelSums per tap that
 * each run or accumulate call adds to. Reset it to start over.
 */
export interface StatisticsProbe {
  readonly taps: readonly StatisticsTap[];
  /** sums[i] belongs to taps[i] (taps of the same tensor, reading and channels share one). */
  readonly sums: readonly ChannelSums[];
  /**
   * Drops the sums; with `shifts`, shifts[i] (when given) becomes the shift of taps[i]'s sums
   * (ChannelSums.shiftTo, in the tapped units) for what is gathered from now on.
   */
  reset(shifts?: readonly (ArrayLike<number> | undefined)[]): void;
}

/** probe.reset's work on the sums of its taps (each shift onto the sums of its tap). */
export function resetSums(
  sums: readonly ChannelSums[],
  shifts?: readonly (ArrayLike<number> | undefined)[],
): void {
  for (const s of new Set(sums)) s.reset();
  shifts?.forEach((k, i) => {
    if (k) sums[i]!.shiftTo(k);
  });
}

/** Values per row of the tensor a tap reads. */
export function tappedWidth(plan: CompiledPlan, step: number): number {
  return step < 0 ? plan.inputWidth : stepOutputWidth(plan.steps[step]!);
}

/**
 * The natural channel count of each tensor of a plan — index 0 the input, i + 1 step i's output:
 * C of a [C, H, W] tensor, the width of a flat one, and the first size of a shape a Flatten gives
 * it (plan.views) when that is finer — a [C, H, W] convolution output flattened for a BatchNorm1d
 * has C·H·W channels of one value each (PyTorch's per-feature statistics). A tap may ask for these
 * or coarser channels (executors size their accumulators by them).
 */
export function tensorChannels(plan: CompiledPlan): number[] {
  const viewed = new Map<number, number>();
  for (const v of plan.views)
    viewed.set(v.tensor, Math.max(viewed.get(v.tensor) ?? 1, v.shape[0]!));
  const finest = (tensor: number, channels: number) => Math.max(channels, viewed.get(tensor) ?? 1);
  const out = [finest(0, plan.inputShape.length === 3 ? plan.inputShape[0]! : plan.inputWidth)];
  let previous = out[0]!;
  let previousWidth = plan.inputWidth;
  plan.steps.forEach((step, i) => {
    const width = stepOutputWidth(step);
    // Element-wise steps (no outputChannels) keep the layout of what they read.
    const channels = finest(
      i + 1,
      stepTraits(step).outputChannels?.(step) ?? (width === previousWidth ? previous : width),
    );
    out.push(channels);
    previous = channels;
    previousWidth = width;
  });
  return out;
}

/**
 * Throws a RangeError unless every tap reads a tensor of the plan with a channel count that
 * divides its width and is no finer than the tensor's natural channels.
 */
export function checkTaps(plan: CompiledPlan, taps: readonly StatisticsTap[]): void {
  const natural = tensorChannels(plan);
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
  });
}

/** Index of a tap's tensor and reading: 2·(step + 1) + (pre_activation ? 1 : 0). */
export const tapPosition = (tap: StatisticsTap): number =>
  2 * (tap.step + 1) + (tap.point === 'pre_activation' ? 1 : 0);

/**
 * One ChannelSums per tap; taps reading the same tensor the same way in the same channels with the
 * same clip (two BatchNorms folded into one step, unclipped) share theirs, so the executor sums
 * that tensor once. Clipped taps of one tensor with other bounds (each BatchNorm's own running
 * statistics), and taps of it in other channels (a BatchNorm1d of a convolution's output
 * flattened to [C·H, W], another of it flattened to [C·H·W]), each have their own.
 */
export function sharedSums(taps: readonly StatisticsTap[]): ChannelSums[] {
  const byReading = new Map<string, Map<TapClip | undefined, ChannelSums>>();
  return taps.map((t) => {
    const key = `${tapPosition(t)}/${t.channels}`;
    let byClip = byReading.get(key);
    if (!byClip) {
      byClip = new Map();
      byReading.set(key, byClip);
    }
    let sums = byClip.get(t.clip);
    if (!sums) {
      sums = new ChannelSums(t.channels);
      if (t.shift) sums.shiftTo(t.shift);
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
 * in float64) into `sums`, per run of width/channels values, each minus its channel's shift
 * (sums.shift) in float64 as the wasm engine subtracts it; with `clip`, each finite value
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
  const shift = sums.shift;
  if (clip) {
    const { lower, upper } = clip;
    let i = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < channels; c++) {
        const lo = lower[c]!;
        const hi = upper[c]!;
        const k = shift[c]!;
        let s = 0;
        let q = 0;
        for (let j = 0; j < spatial; j++, i++) {
          const x0 = x[i]!;
          // + x0·0: NaN for ±∞ and NaN (the sums stay not finite), +0 otherwise.
          const v = (x0 < lo ? lo : Math.min(hi, x0)) + x0 * 0 - k;
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
        const v = x[base + c]! - shift[c]!;
        sum[c] = sum[c]! + v;
        sq[c] = sq[c]! + v * v;
      }
    }
  } else {
    let i = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < channels; c++) {
        const k = shift[c]!;
        let s = 0;
        let q = 0;
        for (let j = 0; j < spatial; j++, i++) {
          const v = x[i]! - k;
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
