/** What the runtime's WebAssembly offers the engine. */
export interface WasmSupport {
  /** Fixed-width SIMD (f32x4): needed for the engine at all. */
  simd: boolean;
  /** Relaxed SIMD (fused multiply-add): used in the GEMM when present. */
  relaxedSimd: boolean;
  /** Shared memory and atomics: needed for helper threads. */
  threads: boolean;
}

/**
 * The probes: one-function modules, as text and as the bytes the assembler makes of it (kept here
 * rather than assembled when first asked: the assembler's first, cold run was most of the 2.9 ms
 * median CPU of detecting support at a model's first load, 0.6 ms with the bytes; test/inference/wasm-support.test.ts checks the bytes against the text).
 */
export const WASM_PROBES = {
  simd: {
    text: '(module (func (param v128 v128) (result v128) (f32x4.add (local.get 0) (local.get 1))))',
    bytes: [
      0, 97, 115, 109, 1, 0, 0, 0, 1, 7, 1, 96, 2, 123, 123, 1, 123, 3, 2, 1, 0, 10, 11, 1, 9, 0,
      32, 0, 32, 1, 253, 228, 1, 11,
    ],
  },
  relaxed: {
    text: '(module (func (param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))))',
    bytes: [
      0, 97, 115, 109, 1, 0, 0, 0, 1, 8, 1, 96, 3, 123, 123, 123, 1, 123, 3, 2, 1, 0, 10, 13, 1, 11,
      0, 32, 0, 32, 1, 32, 2, 253, 133, 2, 11,
    ],
  },
  atomics: {
    text: '(module (import "env" "memory" (memory 1 1 shared)) (func (param i32) (result i32) (i32.atomic.load (local.get 0))))',
    bytes: [
      0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 2, 16, 1, 3, 101, 110, 118, 6, 109,
      101, 109, 111, 114, 121, 2, 3, 1, 1, 3, 2, 1, 0, 10, 10, 1, 8, 0, 32, 0, 254, 16, 2, 0, 11,
    ],
  },
} as const;

const probe = (p: { bytes: readonly number[] }): boolean =>
  WebAssembly.validate(Uint8Array.from(p.bytes));

/**
 * Asks the runtime, by validating tiny modules: cheap (microseconds), and not cached, since the
 * host may switch relaxed SIMD on after start-up (Node 20 keeps it behind a V8 flag).
 */
export function detectWasmSupport(): WasmSupport {
  if (typeof WebAssembly !== 'object') return { simd: false, relaxedSimd: false, threads: false };
  return {
    simd: probe(WASM_PROBES.simd),
    relaxedSimd: probe(WASM_PROBES.relaxed),
    threads: typeof SharedArrayBuffer === 'function' && probe(WASM_PROBES.atomics),
  };
}

/**
 * Why this runtime cannot run WebAssembly kernels or the wasm engine at all (no SIMD, or no shared
 * memory), or undefined when it can.
 */
export function wasmRuntimeUnsupportedReason(support = detectWasmSupport()): string | undefined {
  if (!support.simd) return 'this runtime has no WebAssembly SIMD';
  if (!support.threads) return 'this runtime has no WebAssembly shared memory';
  return undefined;
}
