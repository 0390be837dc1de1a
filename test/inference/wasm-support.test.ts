/**
 * The runtime probes of detectWasmSupport are kept as bytes (src/nn/wasm/wasm-support.ts): they must
 * be what the assembler makes of their text, and each must validate exactly when the runtime has
 * the feature (SIMD and shared memory everywhere Node ≥ 20 runs; relaxed SIMD by V8 flag or not).
 */
import { describe, expect, it } from 'vitest';
import { assembleWat, detectWasmSupport, WASM_PROBES } from '../../src/nn/wasm/index.js';

describe('wasm support probes', () => {
  for (const [name, probe] of Object.entries(WASM_PROBES)) {
    it(`${name}: the bytes are the assembled text`, () => {
      expect([...assembleWat(probe.text)]).toEqual([...probe.bytes]);
    });
  }

  it('Node ≥ 20 has SIMD and shared memory', () => {
    const support = detectWasmSupport();
    expect(support.simd).toBe(true);
    expect(support.threads).toBe(true);
  });

  it('a corrupted probe does not validate', () => {
    const bytes = Uint8Array.from(WASM_PROBES.simd.bytes);
    bytes[bytes.length - 2] = 0xff;
    expect(WebAssembly.validate(bytes)).toBe(false);
  });
});
