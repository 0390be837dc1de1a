import type { Parameter } from './parameter.js';

/**
 * Where the training arithmetic runs: the heavy loops of the layers and optimizers — the matrix
 * products of Linear and Conv2d, BatchNorm's channel sums and element-wise passes, the optimizer
 * steps — behind one interface with two implementations that give the same bits:
 *
 * - `js` (reference-kernels.ts): plain JavaScript, the reference, and what every module uses
 *   unless told otherwise;
 * - `wasm` (wasm/wasm-kernels.ts): WebAssembly SIMD kernels of nn/wasm/ (a GEMM that sums in
 *   float64 on f64x2 lanes, float64 element-wise kernels), built with the engine's assembler.
 *
 * The arithmetic is defined once and both follow it exactly (test/nn/training-kernels.test.ts
 * compares them bit for bit, and a whole training run); it is the arithmetic nn has always had, so
 * the bundled models retrain to their committed bytes on either:
 *
 * - matrix products sum in float64: C[i, j] = bias[j] + 0 (or +0), then C[i, j] += A[i, p]·B[p, j]
 *   for p = 0, 1, …, K−1 in that order (each product of two float32 values is exact in float64), and
 *   the sum is rounded once, where it is stored (see `matmul`);
 * - everything else in float64 over float32 storage, rounded where it is stored, in the order the
 *   reference loops write it.
 *
 * A module picks its kernels with `Module.useKernels` (parameters move to where the kernels want
 * them: the WebAssembly linear memory for `wasm`); optimizers take them as an option.
 */
export type KernelsName = 'js' | 'wasm';

export interface MatmulSpec {
  m: number;
  n: number;
  k: number;
  /** A [m, k] row-major; with transA, stored as its transpose [k, m]. */
  a: Float32Array;
  transA?: boolean;
  /** B [k, n] row-major; with transB, stored as its transpose [n, k] (a Linear weight [out, in]). */
  b: Float32Array;
  transB?: boolean;
  /** Where each sum starts (length n); +0 when absent. */
  bias?: Float32Array | undefined;
  /**
   * C [m, n] row-major: overwritten with the sums, or with accumulate C ← C + sum (one float64
   * addition); a Float32Array gets them rounded to float32, a Float64Array exactly.
   */
  c: Float32Array | Float64Array;
  accumulate?: boolean;
}

/** The [N, C, S] layout of a per-channel operation (S = 1 for [N, C]). */
export interface ChannelLayout {
  n: number;
  c: number;
  s: number;
}

/** The constants of one Adam/AdamW step (nn/adam.ts). */
export interface AdamStep {
  /** 0: no weight decay, 1: decoupled (θ ← θ·decay first), 2: L2 (g ← g + λ·θ). */
  mode: 0 | 1 | 2;
  /** 1 − lr·λ (mode 1). */
  decay: number;
  /** λ (mode 2). */
  weightDecay: number;
  beta1: number;
  /** 1 − β1, computed once in float64. */
  oneMinusBeta1: number;
  beta2: number;
  oneMinusBeta2: number;
  /** lr / (1 − β1ᵗ). */
  stepSize: number;
  /** √(1 − β2ᵗ). */
  biasCorrection2Sqrt: number;
  eps: number;
}

/** The constants of one SGD step (nn/sgd.ts). */
export interface SgdStep {
  lr: number;
  weightDecay: number;
  momentum: number;
  /** 1 − dampening. */
  oneMinusDampening: number;
  /** The momentum buffer's first step (b ← g). */
  first: boolean;
  nesterov: boolean;
}

export interface Kernels {
  readonly name: KernelsName;
  /**
   * Makes a parameter's storage (value and gradient) this implementation's, keeping the values:
   * `wasm` moves them into its linear memory, `js` back to ordinary arrays.
   */
  adopt(parameter: Parameter): void;
  /** A zero-filled float32 array these kernels work on without copying (work arrays, optimizer state). */
  allocate(length: number): Float32Array;

  /**
   * C = bias + A·B (see the interface comment): float64 sums over p in increasing order, rounded
   * once where they are stored.
   */
  matmul(spec: MatmulSpec): void;

  /** sum[c] += Σ x over channel c, in float64: batch row by batch row, along S within a row. */
  channelSums(x: Float32Array, layout: ChannelLayout, sum: Float64Array): void;
  /** sum[c] += Σ (x − mean[c])², in the same order. */
  channelSumSquares(
    x: Float32Array,
    layout: ChannelLayout,
    mean: Float64Array,
    sum: Float64Array,
  ): void;
  /** out = ((x − mean)·invstd)·gamma + beta per channel, in float64, rounded to float32. */
  batchNormNormalize(
    x: Float32Array,
    out: Float32Array,
    layout: ChannelLayout,
    channel: { mean: Float64Array; invstd: Float64Array; gamma: Float64Array; beta: Float64Array },
  ): void;
  /** sumDy[c] += Σ dy, sumDyXhat[c] += Σ dy·x̂ with x̂ = (x − mean)·invstd, in order. */
  batchNormBackwardSums(
    dy: Float32Array,
    x: Float32Array,
    layout: ChannelLayout,
    channel: {
      mean: Float64Array;
      invstd: Float64Array;
      sumDy: Float64Array;
      sumDyXhat: Float64Array;
    },
  ): void;
  /**
   * dx = scaleOverCount·(count·dy − sumDy − x̂·sumDyXhat): the input gradient through batch
   * statistics, scaleOverCount = γ·invstd/count per channel.
   */
  batchNormInputGrad(
    dy: Float32Array,
    x: Float32Array,
    dx: Float32Array,
    layout: ChannelLayout,
    channel: {
      mean: Float64Array;
      invstd: Float64Array;
      scaleOverCount: Float64Array;
      sumDy: Float64Array;
      sumDyXhat: Float64Array;
    },
    count: number,
  ): void;
  /** dx = scale[c]·dy. */
  channelScale(
    dy: Float32Array,
    dx: Float32Array,
    layout: ChannelLayout,
    scale: Float64Array,
  ): void;

  adamStep(
    theta: Float32Array,
    grad: Float32Array,
    expAvg: Float32Array,
    expAvgSq: Float32Array,
    step: AdamStep,
  ): void;
  /** One SGD step; `buffer` is the momentum buffer (absent without momentum). */
  sgdStep(
    theta: Float32Array,
    grad: Float32Array,
    buffer: Float32Array | undefined,
    step: SgdStep,
  ): void;
}
