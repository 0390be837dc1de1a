/**
 * The engine's softmax (nn/wasm/softmax-wat.ts, WasmExecutor.softmax) against nn's float64
 * softmaxRows, which the JavaScript executor returns as is: within SOFTMAX_ULPS float32 ulps plus
 * the float32 rounding of x − max, for any widths (the vector tail of a row), batches of several
 * blocks through the calling thread's buffers, and rows whose smallest values underflow.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildSequential } from '../../src/checkpoint/index.js';
import {
  compileNetwork,
  detectWasmSupport,
  PlanExecutor,
  WasmExecutor,
} from '../../src/inference/index.js';
import { Rng, softmaxRows } from '../../src/nn/index.js';
import { prepareWasmRuntime } from '../../src/service/index.js';
import { float32Ulp, SOFTMAX_ULPS } from '../helpers/tolerances.js';

prepareWasmRuntime();
const relaxedSimd = detectWasmSupport().relaxedSimd;
// The widest tensor is 40 values: softmax over up to 40 classes fits in every block.
const plan = compileNetwork(
  buildSequential([{ type: 'linear', in_features: 40, out_features: 40, bias: true }], {
    init: new Rng(3),
  }).eval(),
  undefined,
  [40],
);
const wasm = new WasmExecutor(plan, { maxBatchSize: 64, threads: 1, relaxedSimd });

const ulp = float32Ulp;

/** Each value within the named tolerance of the float64 reference. */
function expectClose(logits: Float32Array, rows: number, width: number): void {
  const got = wasm.softmax(logits, rows, width);
  const want = softmaxRows(logits, rows, width);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let k = 0; k < width; k++) max = Math.max(max, logits[r * width + k]!);
    for (let k = 0; k < width; k++) {
      const i = r * width + k;
      const spread = Math.abs(logits[i]! - max);
      // The argument's float32 rounding (half an ulp of |x − max|) scales e^(x − max) by up to
      // e^(ulp/2) ≈ 1 + ulp/2.
      const bound = SOFTMAX_ULPS * ulp(want[i]!) + want[i]! * (ulp(spread) / 2) * 1.01;
      // e^(x − max) below 2^-126 is flushed to 0 (vector-math-wat.ts): such a probability is 0.
      const flushed = logits[i]! - max < -87.33 ? want[i]! : 0;
      expect(Math.abs(got[i]! - want[i]!), `row ${r}, class ${k}`).toBeLessThanOrEqual(
        bound + flushed,
      );
    }
  }
}

describe('the engine softmax', () => {
  it('is within a few float32 ulps of the float64 reference, any width and batch', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 1, max: 30 }),
        fc.array(fc.float({ min: -120, max: 120, noNaN: true, noDefaultInfinity: true }), {
          minLength: 40 * 30,
          maxLength: 40 * 30,
        }),
        (width, rows, values) =>
          expectClose(Float32Array.from(values.slice(0, rows * width)), rows, width),
      ),
      { numRuns: 300 },
    );
  });

  it('runs a batch of many blocks through the calling thread buffers', () => {
    const rng = new Rng(5);
    // A block is what one of the plan's chunk buffers holds: 1,024 rows of its widest tensor
    // (40 values), 4,097 rows of 10 classes; 5,000 rows are two blocks, the second partial.
    const rows = 5_000;
    const logits = Float32Array.from({ length: rows * 10 }, () => rng.normal() * 6);
    expectClose(logits, rows, 10);
  });

  it('gives equal logits exactly 1/width and rows summing to one', () => {
    for (const width of [1, 3, 4, 7, 10, 33]) {
      const p = wasm.softmax(new Float32Array(width).fill(2.5), 1, width);
      expect([...p]).toEqual(new Array(width).fill(Math.fround(1 / width)));
    }
    const rng = new Rng(9);
    const logits = Float32Array.from({ length: 50 * 10 }, () => rng.normal() * 20);
    const p = wasm.softmax(logits, 50, 10);
    for (let r = 0; r < 50; r++) {
      let sum = 0;
      for (let k = 0; k < 10; k++) sum += p[r * 10 + k]!;
      expect(Math.abs(sum - 1)).toBeLessThan(10 * 2 ** -24);
    }
  });

  it('is the float64 reference itself on the JavaScript executor', () => {
    const js = new PlanExecutor(plan, 8);
    const rng = new Rng(1);
    const logits = Float32Array.from({ length: 7 * 10 }, () => rng.normal() * 8);
    expect(js.softmax(logits, 7, 10)).toEqual(softmaxRows(logits, 7, 10));
  });
});
