import type { Kernels, KernelsName } from './kernels.js';
import { referenceKernels } from './reference-kernels.js';
import { WasmKernels } from './wasm/wasm-kernels.js';
import {
  detectWasmSupport,
  type WasmSupport,
  wasmRuntimeUnsupportedReason,
} from './wasm/wasm-support.js';

/** The kernel implementations, the default first. */
export const KERNELS: readonly KernelsName[] = ['wasm', 'js'];

/**
 * Kernels for one training run: `wasm` (a fresh instance with its own memory) or the `js`
 * reference. Asked for wasm on a runtime without WebAssembly SIMD or shared memory, the reference
 * — which gives the same bits — and `fallback` says why.
 */
export function createKernels(
  name: KernelsName = 'wasm',
  support: WasmSupport = detectWasmSupport(),
): { kernels: Kernels; fallback?: string } {
  if (name === 'js') return { kernels: referenceKernels };
  const reason = wasmRuntimeUnsupportedReason(support);
  return reason === undefined
    ? { kernels: new WasmKernels() }
    : { kernels: referenceKernels, fallback: reason };
}
