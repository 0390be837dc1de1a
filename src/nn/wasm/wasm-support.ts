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

/** Each probe's bytes, assembled once (the answer is asked anew each time). */
const probeBytes = new Map<string, Uint8Array | undefined>();

const probe = (body: string, memory = ''): boolean => {
  const text = `(module ${memory} (func ${body}))`;
  if (!probeBytes.has(text)) {
    try {
      probeBytes.set(text, assembleWat(text));
    } catch {
      probeBytes.set(text, undefined);
    }
  }
  const bytes = probeBytes.get(text);
  return bytes !== undefined && WebAssembly.validate(bytes);
};

const PROBES = {
  simd: '(param v128 v128) (result v128) (f32x4.add (local.get 0) (local.get 1))',
  relaxed:
    '(param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2))',
  atomics: '(param i32) (result i32) (i32.atomic.load (local.get 0))',
} as const;

/**
 * Asks the runtime, by validating tiny modules: cheap (microseconds), and not cached, since the
 * host may switch relaxed SIMD on after start-up (Node 20 keeps it behind a V8 flag); only the
 * probes' bytes are kept.
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
