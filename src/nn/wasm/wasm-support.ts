import { assembleWat } from './wat-assembler.js';

/** What the runtime's WebAssembly offers the engine. */
export interface WasmSupport {
  /** Fixed-width SIMD (f32x4): needed for the engine at all. */
  simd: boolean;
  /** Relaxed SIMD (fused multiply-add): used in the GEMM when present. */
  relaxedSimd: boolean;
  /** Shared memory and atomics: needed for helper threads. */
  threads: boolean;
}

const probe = (body: string, memory = ''): boolean => {
  try {
    return WebAssembly.validate(assembleWat(`(module ${memory} (func ${body}))`));
  } catch {
    return false;
  }
};

const PROBES = {
  simd: '(param v128 v128) (result v128) (f32x4.add (local.get 0) (local.get 1))',
  relaxed:
    '(param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))',
  atomics: '(param i32) (result i32) (i32.atomic.load (local.get 0))',
} as const;

/**
 * Asks the runtime, by validating tiny modules: cheap (microseconds), and not cached, since the
 * host may switch relaxed SIMD on after start-up (Node 20 keeps it behind a V8 flag).
 */
export function detectWasmSupport(): WasmSupport {
  if (typeof WebAssembly !== 'object') return { simd: false, relaxedSimd: false, threads: false };
  return {
    simd: probe(PROBES.simd),
    relaxedSimd: probe(PROBES.relaxed),
    threads:
      typeof SharedArrayBuffer === 'function' &&
      probe(PROBES.atomics, '(import "env" "memory" (memory 1 1 shared))'),
  };
}
