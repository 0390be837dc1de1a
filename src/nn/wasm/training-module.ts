import { batchNormWat } from './batch-norm-wat.js';
import { gemmF64Wat } from './gemm-f64-wat.js';
import { optimizerWat } from './optimizer-wat.js';
import { WASM32_MAX_PAGES } from './wasm-pages.js';
import { assembleWat } from './wat-assembler.js';

/** Largest memory the training module accepts (64 KiB pages: 4 GiB, wasm32's limit). */
export const TRAINING_MAX_PAGES = WASM32_MAX_PAGES;

/**
 * The training kernels' module as text: one shared memory imported from the host (shared so that
 * it can grow without detaching the views training holds into it), the float64-summing GEMM and
 * its packer (gemm-f64-wat.ts), the optimizer steps and BatchNorm's loops.
 */
export function trainingModuleText(): string {
  return `(module
  (import "env" "memory" (memory 1 ${TRAINING_MAX_PAGES} shared))
  ${gemmF64Wat()}
  ${optimizerWat()}
  ${batchNormWat()}
)`;
}

let compiled: WebAssembly.Module | undefined;

/** The compiled training module, assembled and compiled once per process. */
export function trainingModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(assembleWat(trainingModuleText()));
  return compiled;
}

/** The module's exports; addresses and strides in bytes, counts in elements. */
export interface TrainingExports {
  gemm_f64(
    m: number,
    n: number,
    k: number,
    a: number,
    ars: number,
    acs: number,
    b: number,
    bias: number,
    hasBias: number,
    c: number,
    ldc: number,
    out64: number,
    accumulate: number,
  ): void;
  pack_f64(src: number, rs: number, cs: number, k: number, n: number, dst: number): void;
  adam_step(
    theta: number,
    grad: number,
    m: number,
    v: number,
    count: number,
    decay: number,
    weightDecay: number,
    beta1: number,
    oneMinusBeta1: number,
    beta2: number,
    oneMinusBeta2: number,
    stepSize: number,
    biasCorrection2Sqrt: number,
    eps: number,
    mode: number,
  ): void;
  sgd_step(theta: number, grad: number, count: number, weightDecay: number, lr: number): void;
  sgd_momentum_step(
    theta: number,
    grad: number,
    buf: number,
    count: number,
    weightDecay: number,
    momentum: number,
    oneMinusDampening: number,
    lr: number,
    first: number,
    nesterov: number,
  ): void;
  bn_sum(x: number, sum: number, n: number, c: number, s: number): void;
  bn_sum_sq(x: number, mean: number, sum: number, n: number, c: number, s: number): void;
  bn_normalize(
    x: number,
    out: number,
    mean: number,
    invstd: number,
    gamma: number,
    beta: number,
    n: number,
    c: number,
    s: number,
  ): void;
  bn_backward_sums(
    dy: number,
    x: number,
    mean: number,
    invstd: number,
    sumDy: number,
    sumDyXhat: number,
    n: number,
    c: number,
    s: number,
  ): void;
  bn_input_grad(
    dy: number,
    x: number,
    dx: number,
    mean: number,
    invstd: number,
    scaleOverCount: number,
    sumDy: number,
    sumDyXhat: number,
    n: number,
    c: number,
    s: number,
    count: number,
  ): void;
  bn_scale_grad(dy: number, dx: number, scale: number, n: number, c: number, s: number): void;
}
