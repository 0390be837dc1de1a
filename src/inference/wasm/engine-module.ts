import {
  assembleWat,
  elementwiseWat,
  gemm64Wat,
  gemmWat,
  statisticsWat,
  vectorMathWat,
} from '../../nn/wasm/index.js';
import { programWat } from './program-wat.js';

/** Largest memory the module accepts (64 KiB pages: 4 GiB, wasm32's limit). */
export const MAX_PAGES = 65536;

/**
 * The engine's whole module as text: one shared memory imported from the host (so the calling
 * thread and the helper threads run on the same weights), the GEMM, the element-wise steps and
 * their activations, the float64-accumulating GEMM of statistics plans, the statistics taps' channel sums, the plan interpreter and the helpers' loop. `relaxed` uses relaxed SIMD's
 * fused multiply-add in the GEMM's inner loop.
 */
export function engineModuleText(relaxed: boolean): string {
  return `(module
  (import "env" "memory" (memory 1 ${MAX_PAGES} shared))
  ${vectorMathWat()}
  ${elementwiseWat()}
  ${gemmWat(relaxed)}
  ${gemm64Wat()}
  ${statisticsWat()}
  ${programWat()}
)`;
}

const compiled = new Map<boolean, WebAssembly.Module>();

/** The compiled engine module, assembled and compiled once per process and variant. */
export function engineModule(relaxed: boolean): WebAssembly.Module {
  let module = compiled.get(relaxed);
  if (!module) {
    module = new WebAssembly.Module(assembleWat(engineModuleText(relaxed)));
    compiled.set(relaxed, module);
  }
  return module;
}

export interface EngineExports {
  run(
    program: number,
    input: number,
    output: number,
    r0: number,
    r1: number,
    scratch: number,
  ): void;
  pack_b(src: number, kStride: number, nStride: number, k: number, n: number, dst: number): void;
  gemm: GemmFunction;
  act_pass(src: number, dst: number, count: number, code: number, slope: number): void;
  affine(
    src: number,
    dst: number,
    rows: number,
    features: number,
    scale: number,
    shift: number,
    code: number,
    slope: number,
  ): void;
  layernorm(
    src: number,
    dst: number,
    rows: number,
    features: number,
    eps: number,
    gamma: number,
    beta: number,
    code: number,
    slope: number,
  ): void;
  serve(control: number, program: number, input: number, output: number, scratch: number): void;
  channel_sums(src: number, rows: number, width: number, channels: number, acc: number): void;
}

/**
 * C = A·B + bias, then v > 0 ? v : v·slope (slope 1: identity, 0: ReLU): see gemm-wat.ts. All
 * addresses and strides in bytes; tmp: 128 bytes of scratch.
 */
export type GemmFunction = (
  m: number,
  n: number,
  k: number,
  a: number,
  lda: number,
  b: number,
  bias: number,
  c: number,
  ldc: number,
  slope: number,
  tmp: number,
) => void;

export function instantiateEngine(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
): EngineExports {
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as EngineExports;
}
