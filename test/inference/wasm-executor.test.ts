/**
 * The WebAssembly SIMD engine: its GEMM as a building block (strides, packing from either layout,
 * every edge of the 4×8 and 1×32 tiles, the fused epilogues), and whole plans against the
 * JavaScript reference executor, on both GEMM variants (with and without relaxed-SIMD FMA).
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, type LayerSpec } from '../../src/checkpoint/index.js';
import {
  compileNetwork,
  createExecutor,
  detectWasmSupport,
  PlanExecutor,
  WasmExecutor,
} from '../../src/inference/index.js';
import type { CompiledPlan } from '../../src/inference/plan.js';
import {
  type EngineExports,
  engineModule,
  instantiateEngine,
} from '../../src/inference/wasm/engine-module.js';
import { BatchNorm, Rng, relu, type Sequential, Tensor } from '../../src/nn/index.js';
import { RELU_SLOPE } from '../../src/nn/wasm/index.js';
import { loadModelDirectory } from '../../src/repository/index.js';
import { prepareWasmRuntime } from '../../src/service/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { cnnCases, randomNetwork as randomCnn } from '../helpers/cnn-combinations.js';
import { expectClose } from '../helpers/compare.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';

prepareWasmRuntime();
const variants = detectWasmSupport().relaxedSimd ? [false, true] : [false];

/** A float32 GEMM result is a sum of K float32 products: relative to Σ|a·b|, a few ulps times K. */
const GEMM_RTOL = 1e-6;

function engine(relaxed: boolean, pages = 64): { x: EngineExports; heap: Float32Array } {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  return {
    x: instantiateEngine(engineModule(relaxed), memory),
    heap: new Float32Array(memory.buffer),
  };
}

describe('GEMM building block: C = epilogue(A·B + bias)', () => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 130, 3],
    [3, 5, 7],
    [4, 8, 1],
    [5, 9, 13],
    [8, 10, 64],
    [17, 33, 65],
    [6, 40, 2],
    // Longer than a K slice and taller than a row block: the blocked driver (GEMM_KC, GEMM_MC).
    [70, 17, 600],
    [133, 24, 520],
    [9, 3, 300],
  ];
  for (const relaxed of variants) {
    for (const epilogue of ['none', 'relu', 'leaky'] as const) {
      it(`${epilogue}${relaxed ? ', relaxed FMA' : ''}: every shape, strided A and C, B packed from W or Wᵀ`, () => {
        const { x, heap } = engine(relaxed);
        const rng = new Rng(5);
        const slope = Math.fround(0.1);
        for (const [m, n, k] of shapes) {
          for (const transposed of [false, true]) {
            const lda = k + 3;
            const ldc = n + 5;
            const a = Float32Array.from({ length: m * lda }, () => rng.normal());
            // B[k, n] from a [k, n] matrix, or from W = Bᵀ ([n, k], a Linear weight).
            const b = Float32Array.from({ length: k * n }, () => rng.normal());
            const bias = Float32Array.from({ length: Math.ceil(n / 8) * 8 }, (_, i) =>
              i < n ? rng.normal() : 0,
            );
            // Float offsets of the operands, one after the other.
            const sizes = [m * lda, k * n, Math.ceil(n / 8) * 8 * k, bias.length, m * ldc + 8, 64];
            const [aAt, srcAt, packedAt, biasAt, cAt, tmpAt] = sizes.map(
              (_, i) => 1024 + sizes.slice(0, i).reduce((t, x) => t + x + 64, 0),
            ) as [number, number, number, number, number, number];
            heap.set(a, aAt);
            if (transposed) {
              const w = new Float32Array(n * k);
              for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) w[j * k + i] = b[i * n + j]!;
              heap.set(w, srcAt);
              x.pack_b(srcAt * 4, 4, k * 4, k, n, packedAt * 4);
            } else {
              heap.set(b, srcAt);
              x.pack_b(srcAt * 4, n * 4, 4, k, n, packedAt * 4);
            }
            heap.set(bias, biasAt);
            heap.fill(777, cAt, cAt + m * ldc + 8);
            x.gemm(
              m,
              n,
              k,
              aAt * 4,
              lda * 4,
              packedAt * 4,
              biasAt * 4,
              cAt * 4,
              ldc * 4,
              epilogue === 'none' ? 1 : epilogue === 'relu' ? RELU_SLOPE : slope,
              tmpAt * 4,
            );
            for (let i = 0; i < m; i++) {
              for (let j = 0; j < ldc; j++) {
                const got = heap[cAt + i * ldc + j]!;
                if (j >= n) {
                  expect(got, `C[${i}, ${j}] beyond N is untouched`).toBe(777);
                  continue;
                }
                let sum = bias[j]!;
                let scale = Math.abs(bias[j]!);
                for (let p = 0; p < k; p++) {
                  sum += a[i * lda + p]! * b[p * n + j]!;
                  scale += Math.abs(a[i * lda + p]! * b[p * n + j]!);
                }
                const want =
                  epilogue === 'none'
                    ? sum
                    : epilogue === 'relu'
                      ? relu(sum)
                      : sum > 0
                        ? sum
                        : sum * slope;
                expect(
                  Math.abs(got - want),
                  `[${m}×${k}]·[${k}×${n}] C[${i}, ${j}]`,
                ).toBeLessThanOrEqual(GEMM_RTOL * k * scale + 1e-30);
                // ReLU's zeros for negative sums are +0, as torch.relu gives them.
                if (epilogue === 'relu' && sum < -GEMM_RTOL * k * scale)
                  expect(Object.is(got, 0), `C[${i}, ${j}] is +0`).toBe(true);
              }
            }
          }
        }
      });
    }
  }
});

describe('the epilogues at values that overflowed float32 (±∞) and NaN, as PyTorch', () => {
  // torch.relu(−∞) is +0, not −∞·0 = NaN: a row whose pre-activation overflowed to −∞ and that a
  // ReLU clamps has finite outputs in PyTorch. LeakyReLU keeps −∞·slope = −∞; NaN stays NaN.
  // Slope −0 is ReLU (RELU_SLOPE), +0 LeakyReLU(0) (program-wat.ts passes them so): −∞·0 = NaN
  // there, as torch gives it. Only a negative v is scaled: −0 stays −0 for every slope
  // (torch.relu(−0) is −0). ReLU's zeros are +0; LeakyReLU's are v·slope's, −0 for slope +0 and
  // where the product underflows (−1e-45·1·0.1), as torch's leaky_relu gives them.
  const activate = (v: number, slope: number): number =>
    !(v < 0) || slope === 1 ? v : Object.is(slope, RELU_SLOPE) ? 0 : Math.fround(v * slope);
  const slopes = [1, RELU_SLOPE, 0, Math.fround(0.1)];
  const a = Float32Array.from([3e38, -3e38, 1, Number.NaN, 3e38, -0, -1e-45]);
  const b = Float32Array.from([1, -1.5, 2, -2, 0.5, -0.5, 1e-30, -1]);
  const m = a.length;
  const n = b.length;

  for (const relaxed of variants) {
    it(`gemm and gemm64 (K = 1, the 4×8 and 1×8 tiles)${relaxed ? ', relaxed FMA' : ''}`, () => {
      const { x, heap } = engine(relaxed);
      const gemm64 = (x as unknown as { gemm64: (...args: number[]) => void }).gemm64;
      // Byte offsets: A, B (W = Bᵀ, [n, 1]), packed B, bias, C, tmp, packed B64, bias64.
      const [aAt, wAt, packedAt, biasAt, cAt, tmpAt, b64At, bias64At] = Array.from(
        { length: 8 },
        (_, i) => 4096 + i * 1024,
      ) as [number, number, number, number, number, number, number, number];
      heap.set(a, aAt / 4);
      heap.set(b, wAt / 4);
      x.pack_b(wAt, 4, 4, 1, n, packedAt);
      // A bias of −0 leaves every product as it is (x + −0 = x, −0 included): a −0 reaches the epilogue.
      heap.fill(-0, biasAt / 4, biasAt / 4 + 8);
      new Float64Array(heap.buffer, b64At, 8).set(b);
      new Float64Array(heap.buffer, bias64At, 8).fill(-0);
      for (const slope of slopes) {
        for (const [name, run] of [
          ['gemm', () => x.gemm(m, n, 1, aAt, 4, packedAt, biasAt, cAt, n * 4, slope, tmpAt)],
          ['gemm64', () => gemm64(m, n, 1, aAt, 4, b64At, bias64At, cAt, n * 4, slope)],
        ] as const) {
          heap.fill(777, cAt / 4, cAt / 4 + m * n);
          run();
          for (let i = 0; i < m; i++)
            for (let j = 0; j < n; j++) {
              const want = activate(Math.fround(a[i]! * b[j]!), slope);
              const got = heap[cAt / 4 + i * n + j]!;
              expect(Object.is(got, want), `${name}, slope ${slope}: C[${i}, ${j}] = ${got}`).toBe(
                true,
              );
            }
        }
      }
    });
  }

  it('channel_sums_act: the block activated in place (vector and scalar paths)', () => {
    const { x, heap } = engine(false);
    const values = [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY, Number.NaN, -3, 2, -0, 0];
    const srcAt = 4096;
    const accAt = 8192;
    const shiftAt = 12288;
    new Float64Array(heap.buffer, shiftAt, 7).fill(0);
    for (const slope of slopes) {
      // Per feature (7 channels: four in vectors, three one by one) and one channel of 7 values.
      for (const channels of [7, 1]) {
        const rows = 3;
        const src = Float32Array.from({ length: rows * 7 }, (_, i) => values[(i * 3) % 7]!);
        heap.set(src, srcAt / 4);
        new Float64Array(heap.buffer, accAt, 2 * channels).fill(0);
        x.channel_sums_act(srcAt, rows, 7, channels, accAt, shiftAt, slope);
        src.forEach((v, i) => {
          const got = heap[srcAt / 4 + i]!;
          expect(Object.is(got, activate(v, slope)), `slope ${slope}, value ${i}: ${got}`).toBe(
            true,
          );
        });
      }
    }
  });
});

describe('ReLU and LeakyReLU(0) after an overflow to −∞, whole plans as PyTorch', () => {
  // torch.relu(−∞) = +0, but torch.nn.LeakyReLU(0)(−∞) = −∞·0 = NaN (x > 0 ? x : x·slope), as nn's
  // leakyRelu and the reference executor give it: a slope of 0 is not a ReLU there. The row [3e38]
  // makes the second hidden unit −1.5·3e38 = −∞; the ReLU's answer is finite, LeakyReLU(0)'s NaN.
  for (const act of [{ type: 'relu' }, { type: 'leaky_relu', negative_slope: 0 }] as LayerSpec[]) {
    for (const relaxed of variants) {
      it(`${JSON.stringify(act)}${relaxed ? ', relaxed FMA' : ''}: the reference executor's outputs, NaN included`, () => {
        const net = network([linear(1, 2), act, linear(2, 1)], 1);
        const params = new Map(net.namedParameters());
        const set = (name: string, values: number[]) => params.get(name)!.value.data.set(values);
        set('0.weight', [1, -1.5]);
        set('0.bias', [0, 0]);
        set('2.weight', [1e-36, 1]);
        set('2.bias', [0]);
        const plan = compileNetwork(net, undefined, [1]);
        const wasm = new WasmExecutor(plan, { maxBatchSize: 8, threads: 1, relaxedSimd: relaxed });
        const input = Float32Array.from([3e38, 1, -2, 3e38, 0.5]);
        const want = new PlanExecutor(plan, 8).run(input, input.length);
        expect(Number.isNaN(want[0]!)).toBe(act.type === 'leaky_relu');
        const got = wasm.run(input, input.length);
        expect([...got]).toEqual([...want]);
      });
    }
  }
});

describe('ReLU of −0 is −0 on both executors, as torch.relu', () => {
  // PyTorch 1.13: torch.relu(torch.tensor([-0.])) is tensor([-0.]) (1/relu(−0) = −inf), and so is
  // relu(bn(x)) of an eval BatchNorm1d with running_mean 0, running_var 1 − eps, weight 1,
  // bias −0 at x = −0 (x·1 + (−0 − 0·1) = −0); relu(relu(x) + x) of a residual block too. Math.max
  // and f32x4.max give +0 there. 1 feature takes the engine's general loops; 4 the call-free
  // affine loop (a multiple of 4 with ReLU).
  const zeroBn = (net: Sequential) => {
    for (const m of net.modules) {
      if (!(m instanceof BatchNorm)) continue;
      m.runningMean.data.fill(0);
      m.runningVar.data.fill(1 - 1e-5);
      m.weight!.value.data.fill(1);
      m.bias!.value.data.fill(-0);
    }
    return net;
  };
  const cases: Record<string, (f: number) => LayerSpec[]> = {
    relu: () => [{ type: 'relu' }],
    'batchnorm1d → relu': (f) => [bn(f), { type: 'relu' }],
    'residual(relu)': () => [{ type: 'residual', layers: [{ type: 'relu' }] }],
  };
  for (const [name, layers] of Object.entries(cases)) {
    for (const f of [1, 4]) {
      for (const relaxed of variants) {
        it(`${name}, ${f} feature${f === 1 ? '' : 's'}${relaxed ? ', relaxed FMA' : ''}`, () => {
          const net = zeroBn(network(layers(f), 1));
          const plan = compileNetwork(net, undefined, [f]);
          // Rows of −0, then +0, then −2 (ReLU: +0) in every feature.
          const input = Float32Array.from(
            { length: 3 * f },
            (_, i) => [-0, 0, -2][Math.floor(i / f)]!,
          );
          const want = Array.from(input, (_, i) => (i < f ? -0 : 0));
          const sign = (v: number) => (Object.is(v, -0) ? '−0' : String(v));
          const reference = new PlanExecutor(plan, 8).run(input, 3);
          const wasm = new WasmExecutor(plan, {
            maxBatchSize: 8,
            threads: 1,
            relaxedSimd: relaxed,
          });
          const module = net.forward(new Tensor(input, [3, f])).data;
          for (const [executor, got] of [
            ['JavaScript', reference],
            ['wasm', wasm.run(input, 3)],
            ['nn forward', module],
          ] as const) {
            expect(Array.from(got, sign), executor).toEqual(want.map(sign));
          }
        });
      }
    }
  }
});

describe('affine building block: act(x·scale + shift), float64, rounded once', () => {
  // f a multiple of 4 with no activation or ReLU takes the call-free loop; the others the general
  // one. Both must give what nn's BatchNorm and ReLU give, bit for bit, the sign of a zero included
  // (ReLU(−0) = −0, as torch.relu).
  for (const f of [4, 7, 8, 64, 130]) {
    for (const code of [0, 1, 2] as const) {
      it(`${f} features, activation code ${code}`, () => {
        const { x, heap } = engine(false);
        const rng = new Rng(11 + f);
        const rows = 9;
        const padded = Math.ceil(f / 4) * 4;
        const slope = Math.fround(0.05);
        const src = Float32Array.from({ length: rows * f }, () => rng.normal() * 3);
        src[0] = -0;
        src[1] = 0;
        const scale = Float64Array.from({ length: padded }, () => rng.normal());
        const shift = Float64Array.from({ length: padded }, () => rng.normal());
        shift[0] = 0; // x = −0 → −0·s + 0: +0 or −0 by the sign of s
        // Byte offsets: src, dst (with 16 bytes of slack each), scale, shift.
        const srcAt = 1024;
        const dstAt = srcAt + rows * f * 4 + 64;
        const scaleAt = dstAt + rows * f * 4 + 64;
        const shiftAt = scaleAt + padded * 8;
        heap.set(src, srcAt / 4);
        new Float64Array(heap.buffer, scaleAt, padded).set(scale);
        new Float64Array(heap.buffer, shiftAt, padded).set(shift);
        heap.fill(777, dstAt / 4, dstAt / 4 + rows * f + 4);
        x.affine(srcAt, dstAt, rows, f, scaleAt, shiftAt, code, slope);
        for (let r = 0; r < rows; r++) {
          for (let k = 0; k < f; k++) {
            const v = Math.fround(src[r * f + k]! * scale[k]! + shift[k]!);
            const want = code === 0 ? v : code === 1 ? relu(v) : v > 0 ? v : Math.fround(v * slope);
            expect(Object.is(heap[dstAt / 4 + r * f + k], want), `row ${r}, feature ${k}`).toBe(
              true,
            );
          }
        }
        expect(heap[dstAt / 4 + rows * f], 'nothing written past the block').toBe(777);
      });
    }
  }
});

const linear = (i: number, o: number): LayerSpec => ({
  type: 'linear',
  in_features: i,
  out_features: o,
  bias: true,
});
const bn = (n: number): LayerSpec => ({
  type: 'batchnorm1d',
  num_features: n,
  eps: 1e-5,
  momentum: 0.1,
  affine: true,
  track_running_stats: true,
});

function network(layers: LayerSpec[], seed: number): Sequential {
  const rng = new Rng(seed);
  const net = buildSequential(layers, { init: rng });
  for (const m of net.modules) {
    if (m instanceof BatchNorm) {
      for (let k = 0; k < m.numFeatures; k++) {
        m.runningMean.data[k] = rng.normal() * 0.3;
        m.runningVar.data[k] = 0.5 + rng.next();
      }
    }
  }
  return net.eval();
}

/** Plans exercising every step kind and activation, widths that are not multiples of 4 or 8. */
const plans: Record<string, () => CompiledPlan> = {
  'bundled digits model': () =>
    compileNetwork(digits!.network, digits!.config.input_transform, digits!.config.input_shape),
  'odd widths, every activation': () =>
    compileNetwork(
      network(
        [
          linear(13, 27),
          bn(27),
          { type: 'leaky_relu', negative_slope: 0.03 },
          linear(27, 9),
          { type: 'gelu', approximate: 'none' },
          linear(9, 11),
          { type: 'tanh' },
          linear(11, 6),
          { type: 'sigmoid' },
          linear(6, 17),
          { type: 'selu' },
          linear(17, 5),
          { type: 'gelu', approximate: 'tanh' },
          linear(5, 3),
        ],
        3,
      ),
      undefined,
      [13],
    ),
  'LayerNorm, stand-alone affine and activation steps': () =>
    compileNetwork(
      network(
        [
          { type: 'relu' },
          linear(10, 7),
          { type: 'relu' },
          bn(7),
          { type: 'layernorm', normalized_shape: [7], eps: 1e-5, elementwise_affine: true },
          { type: 'relu' },
          linear(7, 6),
          { type: 'layernorm', normalized_shape: [6], eps: 1e-3, elementwise_affine: false },
          linear(6, 5),
          { type: 'relu' },
          bn(5),
        ],
        4,
      ),
      undefined,
      [10],
    ),
};
const digits = (await loadModelDirectory(bundledVersionDir('digits'))).checkpoint;
const digitsCnn = (await loadModelDirectory(bundledVersionDir('digits-cnn'))).checkpoint;

/** Steps of the shapes a [C, H, W] input brings that the engine has kernels for. */
const samplePlans: Record<string, () => CompiledPlan> = {
  'a [2, 3, 5] input: BatchNorm2d stand-alone (per channel over H·W), LayerNorm over [C, H, W]':
    () =>
      compileNetwork(
        network(
          [
            {
              type: 'batchnorm2d',
              num_features: 2,
              eps: 1e-5,
              momentum: 0.1,
              affine: true,
              track_running_stats: true,
            },
            { type: 'layernorm', normalized_shape: [2, 3, 5], eps: 1e-5, elementwise_affine: true },
            { type: 'relu' },
            { type: 'flatten', start_dim: 1, end_dim: -1 },
            linear(30, 7),
            { type: 'relu' },
            linear(7, 3),
          ],
          5,
        ),
        undefined,
        [2, 3, 5],
      ),
};

/**
 * The engine accumulates its products in float32 (as PyTorch does), the reference in float64:
 * within OUTPUT_ATOL, or a case's own float32 tolerance (cnn-combinations.ts says why).
 */
const tolerances: Record<string, number> = Object.fromEntries(
  Object.entries(cnnCases).map(([name, c]) => [`CNN: ${name}`, c.float32Atol ?? OUTPUT_ATOL]),
);
const toleranceOf = (name: string): number => tolerances[name] ?? OUTPUT_ATOL;

/** Every convolutional arrangement of the compiler's tests, and the bundled CNN. */
const cnnPlans: Record<string, () => CompiledPlan> = {
  'bundled digits-cnn model': () =>
    compileNetwork(
      digitsCnn.network,
      digitsCnn.config.input_transform,
      digitsCnn.config.input_shape,
    ),
  ...Object.fromEntries(
    Object.entries(cnnCases).map(([name, c]) => [
      `CNN: ${name}`,
      () => compileNetwork(randomCnn(c.layers, 7), c.transform, c.inputShape),
    ]),
  ),
};

describe('WasmExecutor vs the JavaScript reference executor', () => {
  for (const [name, make] of Object.entries({ ...plans, ...samplePlans, ...cnnPlans })) {
    for (const relaxed of variants) {
      it(`${name}${relaxed ? ', relaxed FMA' : ''}: outputs within ${toleranceOf(name)} at every batch size, several passes of the I/O region`, () => {
        const plan = make();
        const reference = new PlanExecutor(plan, 64);
        const wasm = new WasmExecutor(plan, { maxBatchSize: 64, threads: 1, relaxedSimd: relaxed });
        const rng = new Rng(9);
        for (const rows of [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 64, 65, 200]) {
          const input = Float32Array.from({ length: rows * plan.inputWidth }, () =>
            rng.uniform(-3, 16),
          );
          const got = wasm.run(input, rows);
          expect(got).toHaveLength(rows * plan.outputWidth);
          expectClose(got, reference.run(input, rows), toleranceOf(name), `${name}, ${rows} rows`);
        }
      });
    }
  }

  it('reads only rows·inputWidth values and refuses too few or a fractional row count', () => {
    const plan = plans['bundled digits model']!();
    const wasm = new WasmExecutor(plan, { maxBatchSize: 16, threads: 1, relaxedSimd: false });
    const long = Float32Array.from({ length: 3 * 64 + 5 }, (_, i) => i % 17);
    expect(wasm.run(long, 3)).toEqual(wasm.run(long.slice(0, 3 * 64), 3));
    expect(() => wasm.run(new Float32Array(64), 2)).toThrow(RangeError);
    expect(() => wasm.run(new Float32Array(128), 1.5)).toThrow(/whole number/);
  });

  it('allocates its memory once: the same buffer serves every call', () => {
    const wasm = new WasmExecutor(plans['bundled digits model']!(), {
      maxBatchSize: 32,
      threads: 1,
      relaxedSimd: false,
    });
    const memory = (wasm as unknown as { heap: Float32Array }).heap.buffer;
    for (const rows of [1, 32, 100]) wasm.run(new Float32Array(rows * 64), rows);
    expect((wasm as unknown as { heap: Float32Array }).heap.buffer).toBe(memory);
  });
});

describe('executor factory', () => {
  const plan = compileNetwork(
    network([linear(4, 3), { type: 'relu' }, linear(3, 2)], 1),
    undefined,
    [4],
  );

  it('builds the wasm engine by default and the JavaScript reference on request', () => {
    expect(createExecutor(plan, { maxBatchSize: 8 }).engine).toBe('wasm');
    expect(createExecutor(plan, { maxBatchSize: 8, engine: 'js' })).toBeInstanceOf(PlanExecutor);
  });

  it('falls back to JavaScript, saying why, on a runtime without WebAssembly SIMD', () => {
    const reasons: string[] = [];
    const executor = createExecutor(plan, {
      maxBatchSize: 8,
      support: { simd: false, relaxedSimd: false, threads: true },
      onFallback: (r) => reasons.push(r),
    });
    expect(executor).toBeInstanceOf(PlanExecutor);
    expect(reasons).toEqual(['this runtime has no WebAssembly SIMD']);
    expect(executor.run(Float32Array.of(1, 2, 3, 4), 1)).toHaveLength(2);
  });

  it('runs every plan of the layer registry on wasm: the CNN, pooling, skips, LayerNorm over part of a sample', () => {
    for (const [name, make] of Object.entries({ ...samplePlans, ...cnnPlans })) {
      const reasons: string[] = [];
      const executor = createExecutor(make(), {
        maxBatchSize: 8,
        onFallback: (r) => reasons.push(r),
      });
      expect(executor.engine, name).toBe('wasm');
      expect(reasons, name).toEqual([]);
    }
  });

  it('falls back to JavaScript, saying why, for a plan step it has no kernel for', () => {
    const reasons: string[] = [];
    // A step kind from a future layer type (the plan is otherwise the digits CNN).
    const cnn = cnnPlans['bundled digits-cnn model']!();
    const future = {
      ...cnn,
      steps: [...cnn.steps, { ...cnn.steps.at(-1)!, op: 'unknown_op' }],
    } as unknown as CompiledPlan;
    expect(
      createExecutor(future, { maxBatchSize: 8, onFallback: (r) => reasons.push(r) }),
    ).toBeInstanceOf(PlanExecutor);
    expect(reasons).toEqual(['the wasm engine has no kernel for plan step(s) unknown_op']);
  });
});
