import {
  copySliced,
  finish,
  maxPoolKernel,
  meanPoolKernel,
  type Sliced,
  softmaxRows,
} from '../nn/index.js';
import { conv2dKernel, conv2dScratch, type WideConv2dStep } from './conv2d-kernel.js';
import { checkRunArguments, checkSameStructure, type Executor } from './executor.js';
import {
  ACT_NONE,
  activationCode,
  activationKernel,
  affineKernel,
  denseKernel,
  layerNormKernel,
} from './kernels.js';
import {
  type AffineStep,
  type CompiledPlan,
  type DenseStep,
  type LayerNormStep,
  type PlanStep,
  slopeOf,
} from './plan.js';
import { addSkipKernel } from './skip-kernels.js';
import {
  addChannelSums,
  type ChannelSums,
  checkTaps,
  resetSums,
  type StatisticsProbe,
  type StatisticsTap,
  sharedSums,
  stepsNeeded,
  type TapClip,
  tapPosition,
  tappedWidth,
} from './statistics-probe.js';

/** The sums one tensor reading adds to, and the clip they are gathered with. */
interface TapTarget {
  sums: ChannelSums;
  clip: TapClip | undefined;
}

/** A probe of the JavaScript executor: per tensor position, the sums its taps add to. */
class PlanProbe implements StatisticsProbe {
  readonly sums: ChannelSums[];
  /** Index 2·(step + 1) + (pre_activation ? 1 : 0) → the sums of the taps there (distinct). */
  readonly at: (TapTarget[] | undefined)[];
  readonly steps: number;

  constructor(
    readonly owner: PlanExecutor,
    readonly taps: readonly StatisticsTap[],
  ) {
    this.sums = sharedSums(taps);
    this.at = new Array(2 * (owner.plan.steps.length + 1)).fill(undefined);
    taps.forEach((t, i) => {
      const sums = this.sums[i]!;
      const position = tapPosition(t);
      const targets = this.at[position] ?? [];
      this.at[position] = targets;
      if (!targets.some((x) => x.sums === sums)) targets.push({ sums, clip: t.clip });
    });
    this.steps = stepsNeeded(taps);
  }

  reset(shifts?: readonly (ArrayLike<number> | undefined)[]): void {
    resetSums(this.sums, shifts);
  }
}

interface Buffers {
  rows: number;
  a: Float64Array;
  b: Float64Array;
  /** One buffer per skip slot (residual blocks). */
  skips: Float64Array[];
}

/** A plan step with its parameters widened to float64 for the kernels. */
type WideStep =
  | (Omit<DenseStep, 'weight' | 'bias'> & { weight: Float64Array; bias: Float64Array })
  | WideConv2dStep
  | (Omit<AffineStep, 'scale' | 'shift'> & { scale: Float64Array; shift: Float64Array })
  | (Omit<LayerNormStep, 'weight' | 'bias'> & {
      weight: Float64Array | undefined;
      bias: Float64Array | undefined;
    })
  | Exclude<PlanStep, { op: 'dense' | 'conv2d' | 'affine' | 'layernorm' }>;

function widen(step: PlanStep): WideStep {
  switch (step.op) {
    case 'dense':
    case 'conv2d':
      return { ...step, weight: finish(widening(step.weight)), bias: Float64Array.from(step.bias) };
    case 'affine':
      return {
        ...step,
        scale: Float64Array.from(step.scale),
        shift: Float64Array.from(step.shift),
      };
    case 'layernorm':
      return {
        ...step,
        weight: step.weight ? Float64Array.from(step.weight) : undefined,
        bias: step.bias ? Float64Array.from(step.bias) : undefined,
      };
    default:
      return step;
  }
}

/** A kernel's weights as float64, copied SLICE_VALUES values at a time (nn/slices.ts). */
function* widening(weight: Float32Array): Sliced<Float64Array> {
  const wide = new Float64Array(weight.length);
  yield* copySliced(wide, weight);
  return wide;
}

/** widen in slices: a dense or conv step's weights copied a slice at a time, the rest at once. */
function* wideningStep(step: PlanStep): Sliced<WideStep> {
  if (step.op !== 'dense' && step.op !== 'conv2d') return widen(step);
  return { ...step, weight: yield* widening(step.weight), bias: Float64Array.from(step.bias) };
}

/**
 * Runs a compiled plan: the JavaScript reference executor, and the one for every step kind the
 * WebAssembly engine has no kernel for. Intermediate activations live in two preallocated float64
 * ping-pong buffers (plus one per skip slot of the residual blocks), holding float32 values (the
 * kernels round what they store), per batch-size class (powers of two up to `maxBatchSize`),
 * created on first use and reused, so the hot path allocates only the returned output. Not
 * re-entrant, which is safe in one JavaScript thread because `run` is synchronous.
 */
export class PlanExecutor implements Executor {
  readonly engine = 'js' as const;
  readonly threads = 1;
  readonly warmUpRows = 1;
  plan: CompiledPlan;
  readonly maxBatchSize: number;
  private readonly buffers = new Map<number, Buffers>();
  private steps: WideStep[];
  private readonly codes: number[];
  private readonly slopes: number[];
  /** Scratch of the conv steps (im2col rows and GEMM output), shared: steps run one at a time. */
  private readonly cols: Float64Array;
  private readonly product: Float64Array;

  /** The executor of `plan`, its float64 copy of the weights made in slices (nn/slices.ts). */
  static *building(plan: CompiledPlan, maxBatchSize: number): Sliced<PlanExecutor> {
    const steps: WideStep[] = [];
    for (const step of plan.steps) steps.push(yield* wideningStep(step));
    return new PlanExecutor(plan, maxBatchSize, steps);
  }

  /** `widened`: the plan's steps in float64, when `building` made them. */
  constructor(plan: CompiledPlan, maxBatchSize: number, widened?: WideStep[]) {
    this.plan = plan;
    this.maxBatchSize = maxBatchSize;
    this.steps = widened ?? plan.steps.map(widen);
    this.codes = plan.steps.map((s) => activationCode(s.activation));
    this.slopes = plan.steps.map((s) => slopeOf(s.activation));
    const scratch = plan.steps.map((s) =>
      s.op === 'conv2d' ? conv2dScratch(s) : { cols: 0, product: 0 },
    );
    // Folds, not Math.max(...scratch): one argument per step overflows the stack on long plans.
    this.cols = new Float64Array(scratch.reduce((most, s) => Math.max(most, s.cols), 0));
    this.product = new Float64Array(scratch.reduce((most, s) => Math.max(most, s.product), 0));
  }

  /** The batch-size class of `rows`: the next power of two, capped at maxBatchSize. */
  private sizeClass(rows: number): number {
    let c = 1;
    while (c < rows) c *= 2;
    return Math.min(c, Math.max(this.maxBatchSize, rows));
  }

  private buffersFor(rows: number): Buffers {
    const cls = this.sizeClass(rows);
    let buf = this.buffers.get(cls);
    if (!buf) {
      const size = cls * this.plan.maxWidth;
      buf = {
        rows: cls,
        a: new Float64Array(size),
        b: new Float64Array(size),
        skips: Array.from({ length: this.plan.skipSlots }, () => new Float64Array(size)),
      };
      this.buffers.set(cls, buf);
    }
    return buf;
  }

  /** The input buffer for `rows` rows, to be filled before `runInPlace` (saves one copy). */
  inputBuffer(rows: number): Float64Array {
    return this.buffersFor(rows).a.subarray(0, rows * this.plan.inputWidth);
  }

  /** Runs the plan on `input` ([rows, inputWidth], row-major); returns a new [rows, outputWidth] array. */
  run(input: Float32Array, rows: number, probe?: StatisticsProbe): Float32Array {
    checkRunArguments(this.plan, input, rows);
    const taps = probe ? this.own(probe) : undefined;
    this.inputBuffer(rows).set(input.subarray(0, rows * this.plan.inputWidth));
    return this.runInPlace(rows, taps);
  }

  /** Never: this executor has no other thread. */
  offloads(_rows: number): boolean {
    return false;
  }

  softmax(logits: Float32Array, rows: number, width: number): Float32Array {
    return softmaxRows(logits, rows, width);
  }

  runAsync(input: Float32Array, rows: number, probe?: StatisticsProbe): Promise<Float32Array> {
    try {
      return Promise.resolve(this.run(input, rows, probe));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  accumulate(input: Float32Array, rows: number, probe: StatisticsProbe): void {
    checkRunArguments(this.plan, input, rows);
    const taps = this.own(probe);
    this.inputBuffer(rows).set(input.subarray(0, rows * this.plan.inputWidth));
    this.execute(rows, taps, taps.steps);
  }

  accumulateAsync(input: Float32Array, rows: number, probe: StatisticsProbe): Promise<void> {
    try {
      this.accumulate(input, rows, probe);
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  createProbe(taps: readonly StatisticsTap[]): StatisticsProbe {
    checkTaps(this.plan, taps);
    return new PlanProbe(this, taps);
  }

  updateParameters(plan: CompiledPlan): void {
    checkSameStructure(this.plan, plan);
    this.plan = plan;
    this.steps = plan.steps.map(widen);
  }

  /** No helper threads: everything runs on the calling thread. */
  startHelpers(): void {}

  /** Its buffers do not exist before the call that needs them (buffersFor): nothing to touch. */
  prefault(_rows: number, _maxBytes: number): boolean {
    return false;
  }

  /** Nothing to release: the buffers are garbage-collected with the executor. */
  close(): void {}

  /** Runs the plan on what `inputBuffer(rows)` holds. */
  private runInPlace(rows: number, probe?: StatisticsProbe): Float32Array {
    const taps = probe ? this.own(probe) : undefined;
    const out = this.execute(rows, taps, this.steps.length);
    const width = this.plan.outputWidth;
    return Float32Array.from(out.subarray(0, rows * width));
  }

  private own(probe: StatisticsProbe): PlanProbe {
    if (!(probe instanceof PlanProbe) || probe.owner !== this)
      throw new RangeError('the probe was created by another executor');
    return probe;
  }

  /** Steps 0 … limit−1 on what the input buffer holds; returns the buffer holding the result. */
  private execute(rows: number, taps: PlanProbe | undefined, limit: number): Float64Array {
    const buf = this.buffersFor(rows);
    let src = buf.a;
    let dst = buf.b;
    const steps = this.steps;
    const tap = (index: number, x: Float64Array, step: number): void => {
      const targets = taps?.at[index];
      if (!targets) return;
      for (const t of targets)
        addChannelSums(x, rows, tappedWidth(this.plan, step), t.sums, t.clip);
    };
    tap(0, src, -1);
    for (let s = 0; s < limit; s++) {
      const step = steps[s]!;
      const slope = this.slopes[s]!;
      const pre = taps?.at[2 * (s + 1) + 1];
      // A pre-activation tap runs the step without its activation, reads it, then activates.
      const code = pre ? ACT_NONE : this.codes[s]!;
      switch (step.op) {
        case 'dense':
          denseKernel(
            src,
            rows,
            step.inFeatures,
            step.outFeatures,
            step.weight,
            step.bias,
            code,
            slope,
            dst,
          );
          break;
        case 'conv2d':
          conv2dKernel(src, rows, step, code, slope, dst, this.cols, this.product);
          break;
        case 'affine':
          affineKernel(
            src,
            rows,
            step.channels,
            step.spatial,
            step.scale,
            step.shift,
            code,
            slope,
            dst,
          );
          break;
        case 'layernorm':
          layerNormKernel(
            src,
            rows * step.groups,
            step.groupSize,
            step.eps,
            step.weight,
            step.bias,
            code,
            slope,
            dst,
          );
          break;
        case 'activation':
          activationKernel(src, rows * step.features, code, slope, dst);
          break;
        case 'maxpool2d':
        case 'avgpool2d': {
          const planes = rows * step.channels;
          if (step.op === 'maxpool2d') maxPoolKernel(src, planes, step.windows, dst);
          else meanPoolKernel(src, planes, step.windows, dst);
          const count = planes * step.windows.outH * step.windows.outW;
          if (code !== ACT_NONE) activationKernel(dst, count, code, slope, dst);
          break;
        }
        case 'save_skip':
          // The block's input stays where it is and is also kept for the add.
          buf.skips[step.slot]!.set(src.subarray(0, rows * step.features));
          tap(2 * (s + 1) + 1, src, s);
          tap(2 * (s + 1), src, s);
          continue;
        case 'add_skip':
          addSkipKernel(src, buf.skips[step.slot]!, rows * step.features, code, slope, dst);
          break;
      }
      if (pre) {
        tap(2 * (s + 1) + 1, dst, s);
        const real = this.codes[s]!;
        if (real !== ACT_NONE)
          activationKernel(dst, rows * tappedWidth(this.plan, s), real, slope, dst);
      }
      tap(2 * (s + 1), dst, s);
      const t = src;
      src = dst;
      dst = t;
    }
    return src;
  }
}
