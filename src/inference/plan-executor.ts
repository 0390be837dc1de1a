import {
  activationCode,
  activationKernel,
  affineKernel,
  denseKernel,
  layerNormKernel,
} from './kernels.js';
import type { Activation, CompiledPlan, PlanStep } from './plan.js';

interface Buffers {
  rows: number;
  a: Float32Array;
  b: Float32Array;
}

const slopeOf = (a: Activation): number => (a.kind === 'leaky_relu' ? a.negativeSlope : 0);

/**
 * Runs a compiled plan. Intermediate activations live in two preallocated ping-pong buffers per
 * batch-size class (powers of two up to `maxBatchSize`), created on first use and reused, so the
 * hot path allocates only the returned output. Not re-entrant, which is safe in one JavaScript
 * thread because `run` is synchronous.
 */
export class PlanExecutor {
  readonly plan: CompiledPlan;
  readonly maxBatchSize: number;
  private readonly buffers = new Map<number, Buffers>();
  private readonly codes: number[];
  private readonly slopes: number[];

  constructor(plan: CompiledPlan, maxBatchSize: number) {
    this.plan = plan;
    this.maxBatchSize = maxBatchSize;
    this.codes = plan.steps.map((s) => activationCode(s.activation));
    this.slopes = plan.steps.map((s) => slopeOf(s.activation));
  }

  /** The batch-size class of `rows`: the next power of two, capped at maxBatchSize. */
  sizeClass(rows: number): number {
    let c = 1;
    while (c < rows) c *= 2;
    return Math.min(c, Math.max(this.maxBatchSize, rows));
  }

  private buffersFor(rows: number): Buffers {
    const cls = this.sizeClass(rows);
    let buf = this.buffers.get(cls);
    if (!buf) {
      const size = cls * this.plan.maxWidth;
      buf = { rows: cls, a: new Float32Array(size), b: new Float32Array(size) };
      this.buffers.set(cls, buf);
    }
    return buf;
  }

  /** The input buffer for `rows` rows, to be filled before `runInPlace` (saves one copy). */
  inputBuffer(rows: number): Float32Array {
    return this.buffersFor(rows).a.subarray(0, rows * this.plan.inputWidth);
  }

  /** Runs the plan on `input` ([rows, inputWidth], row-major); returns a new [rows, outputWidth] array. */
  run(input: Float32Array, rows: number): Float32Array {
    const target = this.inputBuffer(rows);
    if (input !== target) target.set(input.subarray(0, rows * this.plan.inputWidth));
    return this.runInPlace(rows);
  }

  /** Runs the plan on what `inputBuffer(rows)` holds. */
  runInPlace(rows: number): Float32Array {
    const buf = this.buffersFor(rows);
    let src = buf.a;
    let dst = buf.b;
    let width = this.plan.inputWidth;
    const steps = this.plan.steps;
    for (let s = 0; s < steps.length; s++) {
      const step: PlanStep = steps[s]!;
      const code = this.codes[s]!;
      const slope = this.slopes[s]!;
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
          width = step.outFeatures;
          break;
        case 'affine':
          affineKernel(src, rows, step.features, step.scale, step.shift, code, slope, dst);
          break;
        case 'layernorm':
          layerNormKernel(
            src,
            rows,
            step.features,
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
      }
      const t = src;
      src = dst;
      dst = t;
    }
    return src.slice(0, rows * width);
  }
}
