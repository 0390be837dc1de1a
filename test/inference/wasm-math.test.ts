/**
 * The WebAssembly engine's activations (src/nn/wasm/vector-math-wat.ts, float32 SIMD)
 * against the functions of src/nn (float64, PyTorch's definitions) on a dense grid, across
 * magnitudes, and at the special values.
 */
import { describe, expect, it } from 'vitest';
import { ACTIVATION_CODES } from '../../src/inference/kernels.js';
import { engineModule, instantiateEngine } from '../../src/inference/wasm/engine-module.js';
import { gelu, geluTanh, leakyRelu, relu, selu, sigmoid } from '../../src/nn/index.js';
import { ACTIVATION_ULPS, float32Ulp, GELU_TANH_RTOL } from '../helpers/tolerances.js';

const SLOPE = Math.fround(0.01);
const reference: Record<keyof typeof ACTIVATION_ULPS | 'gelu_tanh', (x: number) => number> = {
  relu,
  leaky_relu: (x) => leakyRelu(x, SLOPE),
  tanh: Math.tanh,
  sigmoid,
  selu,
  gelu,
  gelu_tanh: geluTanh,
};

const inputs: number[] = [];
for (let v = -30; v <= 30; v += 0.00037) inputs.push(Math.fround(v));
for (let e = -40; e <= 38; e++)
  for (const s of [1, -1])
    for (const m of [1, 1.3, 1.77]) inputs.push(Math.fround(s * m * 10 ** e));
// Range boundaries of the polynomials (tanh 0.625, erf 0.84375 and 1.25 in z = x/√2, 1/0.35),
// exp's clamps, float32's extremes.
const specials = [0, -0, 0.625, -0.625, 1.1932, -1.1932, 1.7678, -1.7678, 4.0406, -4.0406];
specials.push(-0.5, 87.3, -87.4, 88.8, -88.8, 1.17549435e-38, -1.17549435e-38, 3.4e38, -3.4e38);
inputs.push(...specials.map(Math.fround), Infinity, -Infinity, NaN);

/** The activation `code` of every input, computed by the engine's act_pass. */
function engine(code: number): Float32Array {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 64, shared: true });
  const x = instantiateEngine(engineModule(false), memory);
  const heap = new Float32Array(memory.buffer);
  const src = 1024;
  const dst = src + inputs.length + 64;
  heap.set(inputs, src);
  x.act_pass(src * 4, dst * 4, inputs.length, code, SLOPE);
  return heap.slice(dst, dst + inputs.length);
}

const ulp = float32Ulp;

describe('WebAssembly activations vs the float64 reference', () => {
  for (const [name, fn] of Object.entries(reference)) {
    const bound =
      name === 'gelu_tanh'
        ? `relative ${GELU_TANH_RTOL}`
        : `${ACTIVATION_ULPS[name as keyof typeof ACTIVATION_ULPS]} ulp`;
    it(`${name}: within ${bound} over ${inputs.length} inputs, NaN → NaN, ±Infinity as the reference`, () => {
      const got = engine(ACTIVATION_CODES[name as keyof typeof ACTIVATION_CODES]);
      let worst = 0;
      let worstAt = 0;
      for (let i = 0; i < inputs.length; i++) {
        const x = inputs[i]!;
        const want = Math.fround(fn(x));
        const g = got[i]!;
        if (Number.isNaN(want) || !Number.isFinite(want)) {
          expect(g, `${name}(${x})`).toBe(want);
          continue;
        }
        const d = Math.abs(g - want);
        // Floors where the reference, not the engine, runs out of digits: float64's 1 + erf and
        // 1 + tanh cancel in the far negative tails (error ≈ |x|·2⁻⁵³), and float32 underflows
        // below 1e-37 (the engine flushes e^x there).
        if (d <= Math.abs(x) * 1e-15 || d <= 1e-37) continue;
        const error = name === 'gelu_tanh' ? d / Math.abs(want) : d / ulp(want);
        if (error > worst) {
          worst = error;
          worstAt = x;
        }
      }
      const limit =
        name === 'gelu_tanh'
          ? GELU_TANH_RTOL
          : ACTIVATION_ULPS[name as keyof typeof ACTIVATION_ULPS];
      expect(worst, `${name}: worst at x = ${worstAt}`).toBeLessThanOrEqual(limit);
    });
  }
});
