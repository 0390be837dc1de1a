/**
 * The WebAssembly training kernels against the JavaScript reference (src/nn/kernels.ts): the same
 * bits for every operation, layout and size — tails of vectors, partial panels, odd channel
 * counts —, with operands in ordinary arrays (copied in and out) and in the kernels' own memory
 * (read in place), and the module they run in assembled exactly as wabt assembles it.
 */
import { describe, expect, it } from 'vitest';
import wabtInit from 'wabt';
import {
  type AdamStep,
  AdamW,
  BatchNorm1d,
  BatchNorm2d,
  type ChannelLayout,
  Conv2d,
  type Kernels,
  Linear,
  type Module,
  ReLU,
  Rng,
  referenceKernels,
  Sequential,
  type SgdStep,
  Tensor,
} from '../../src/nn/index.js';
import { assembleWat, trainingModuleText, WasmKernels } from '../../src/nn/wasm/index.js';

const wasm = new WasmKernels();

/** Bit patterns, so that −0 ≠ +0 and NaN payloads count. */
const bits = (a: Float32Array | Float64Array): Uint32Array =>
  new Uint32Array(a.buffer, a.byteOffset, a.byteLength / 4);

function expectSameBits(
  actual: Float32Array | Float64Array,
  expected: Float32Array | Float64Array,
  what: string,
) {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  const x = bits(actual);
  const y = bits(expected);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      expect.fail(
        `${what}: word ${i} differs (${actual[Math.floor(i / (x.length / actual.length))]} vs ${expected[Math.floor(i / (x.length / expected.length))]})`,
      );
    }
  }
}

const rng = new Rng(2024);
const random = (n: number, scale = 1): Float32Array =>
  Float32Array.from({ length: n }, () => rng.uniform(-scale, scale));
/** Random values with some exact zeros (as ReLU and dropout produce) and a −0. */
const sparse = (n: number): Float32Array => {
  const a = random(n);
  for (let i = 0; i < n; i += 3) a[i] = 0;
  if (n > 1) a[1] = -0;
  return a;
};
/** A copy in the WebAssembly kernels' memory, or an ordinary copy. */
const place = (a: Float32Array, inWasm: boolean): Float32Array => {
  if (!inWasm) return a.slice();
  const b = wasm.allocate(a.length);
  b.set(a);
  return b;
};

describe('training kernels: wasm = js, bit for bit', () => {
  it('assembles the training module exactly as wabt does', async () => {
    const wabt = await wabtInit();
    const text = trainingModuleText();
    const module = wabt.parseWat('training.wat', text, { simd: true, threads: true });
    try {
      expect(Buffer.from(assembleWat(text)).equals(Buffer.from(module.toBinary({}).buffer))).toBe(
        true,
      );
    } finally {
      module.destroy();
    }
  });

  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [2, 3, 5],
    [4, 8, 4],
    [5, 9, 3],
    [7, 17, 13],
    [9, 31, 6],
    [33, 10, 64],
    [32, 128, 64],
    [64, 10, 129],
  ];
  for (const inWasm of [false, true]) {
    it(`matmul: every layout, bias or none, overwrite or accumulate (operands ${inWasm ? 'in wasm memory' : 'in ordinary arrays'})`, () => {
      for (const [m, n, k] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const withBias of [false, true]) {
              for (const accumulate of [false, true]) {
                const a = sparse(m * k);
                const b = random(k * n);
                const bias = withBias ? random(n) : undefined;
                const c = random(m * n);
                const expected = c.slice();
                referenceKernels.matmul({
                  m,
                  n,
                  k,
                  a,
                  b,
                  transA,
                  transB,
                  bias,
                  c: expected,
                  accumulate,
                });
                const actual = place(c, inWasm);
                wasm.matmul({
                  m,
                  n,
                  k,
                  a: place(a, inWasm),
                  b: place(b, inWasm),
                  transA,
                  transB,
                  bias: bias && place(bias, inWasm),
                  c: actual,
                  accumulate,
                });
                expectSameBits(
                  actual,
                  expected,
                  `[${m}, ${n}, ${k}] transA ${transA} transB ${transB} bias ${withBias} accumulate ${accumulate}`,
                );
              }
            }
          }
        }
      }
    });
  }

  for (const inWasm of [false, true]) {
    it(`matmul into float64 outputs, overwrite or accumulate (operands ${inWasm ? 'in wasm memory' : 'in ordinary arrays'})`, () => {
      for (const [m, n, k] of shapes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const accumulate of [false, true]) {
              const a = sparse(m * k);
              const b = random(k * n);
              const bias = random(n);
              // Longer than m·n, as a grown work array: only the first m·n values are C.
              const c = Float64Array.from(random(m * n + 3));
              const expected = c.slice();
              referenceKernels.matmul({
                m,
                n,
                k,
                a,
                b,
                transA,
                transB,
                bias,
                c: expected,
                accumulate,
              });
              const actual = c.slice();
              wasm.matmul({
                m,
                n,
                k,
                a: place(a, inWasm),
                b: place(b, inWasm),
                transA,
                transB,
                bias,
                c: actual,
                accumulate,
              });
              expectSameBits(
                actual,
                expected,
                `float64 [${m}, ${n}, ${k}] transA ${transA} transB ${transB} accumulate ${accumulate}`,
              );
            }
          }
        }
      }
    });
  }

  it('matmul sums in float64 in order and rounds once', () => {
    // 1 + 2⁻²⁴ + 2⁻²⁴: a float32 sum would round each step back to 1; float64 keeps 1 + 2⁻²³.
    const a = Float32Array.from([1, 2 ** -24, 2 ** -24]);
    const b = Float32Array.from([1, 1, 1]);
    for (const kernels of [referenceKernels, wasm] as Kernels[]) {
      const c = new Float32Array(1);
      kernels.matmul({ m: 1, n: 1, k: 3, a, b, c });
      expect(c[0], kernels.name).toBe(1 + 2 ** -23);
      // The order counts: 2⁵³ + 1 − 2⁵³ is 0 in float64 (the 1 is lost), not 1.
      const big = Float32Array.from([2 ** 53, 1, -(2 ** 53)]);
      const c64 = new Float64Array(1);
      kernels.matmul({ m: 1, n: 1, k: 3, a: big, b, c: c64 });
      expect(c64[0], kernels.name).toBe(0);
      // The bias is where the sum starts: (2⁵³ + 1) − 2⁵³ = 0, where 2⁵³ + (1 − 2⁵³) would be 1.
      kernels.matmul({
        m: 1,
        n: 1,
        k: 2,
        a: big.subarray(1),
        b,
        bias: Float32Array.from([2 ** 53]),
        c: c64,
      });
      expect(c64[0], kernels.name).toBe(0);
    }
  });

  const layouts: ChannelLayout[] = [
    { n: 1, c: 1, s: 1 },
    { n: 3, c: 5, s: 1 },
    { n: 8, c: 4, s: 1 },
    { n: 7, c: 13, s: 1 },
    { n: 32, c: 128, s: 1 },
    { n: 2, c: 3, s: 7 },
    { n: 3, c: 2, s: 16 },
    { n: 4, c: 5, s: 9 },
  ];

  it('BatchNorm channel sums, normalization and gradients over [N, C] and [N, C, S]', () => {
    for (const layout of layouts) {
      const size = layout.n * layout.c * layout.s;
      const x = random(size, 3);
      const dy = sparse(size);
      const c = layout.c;
      const channels = () => {
        const mean = Float64Array.from({ length: c }, () => rng.uniform(-1, 1));
        const invstd = Float64Array.from({ length: c }, () => rng.uniform(0.5, 2));
        return { mean, invstd };
      };
      const { mean, invstd } = channels();
      const gamma = Float64Array.from({ length: c }, () => Math.fround(rng.uniform(0.5, 1.5)));
      const beta = Float64Array.from({ length: c }, () => Math.fround(rng.uniform(-1, 1)));
      const what = `[${layout.n}, ${layout.c}, ${layout.s}]`;
      for (const inWasm of [false, true]) {
        const sums = [referenceKernels, wasm].map((k) => {
          const sum = new Float64Array(c).fill(0.25);
          const sq = new Float64Array(c);
          const input = k === wasm ? place(x, inWasm) : x;
          k.channelSums(input, layout, sum);
          k.channelSumSquares(input, layout, mean, sq);
          const out = k === wasm ? place(new Float32Array(size), inWasm) : new Float32Array(size);
          k.batchNormNormalize(input, out, layout, { mean, invstd, gamma, beta });
          const sumDy = new Float64Array(c);
          const sumDyXhat = new Float64Array(c);
          const grad = k === wasm ? place(dy, inWasm) : dy;
          k.batchNormBackwardSums(grad, input, layout, { mean, invstd, sumDy, sumDyXhat });
          const scaleOverCount = invstd.map((v, i) => (gamma[i]! * v) / (layout.n * layout.s));
          const dx = new Float32Array(size);
          k.batchNormInputGrad(
            grad,
            input,
            dx,
            layout,
            { mean, invstd, scaleOverCount, sumDy, sumDyXhat },
            layout.n * layout.s,
          );
          const dxFixed = new Float32Array(size);
          k.channelScale(grad, dxFixed, layout, invstd);
          return { sum, sq, out: out.slice(), sumDy, sumDyXhat, dx, dxFixed };
        });
        const [js, w] = sums as [(typeof sums)[0], (typeof sums)[0]];
        for (const key of Object.keys(js) as (keyof typeof js)[])
          expectSameBits(w[key], js[key], `${what} ${key}${inWasm ? ' (in wasm memory)' : ''}`);
      }
    }
  });

  it('Adam, AdamW and L2 steps, SGD with and without (Nesterov) momentum', () => {
    for (const length of [1, 3, 4, 7, 8, 13, 1000]) {
      for (const mode of [0, 1, 2] as const) {
        const state = [random(length), sparse(length), random(length, 0.1), random(length, 0.01)];
        state[3] = state[3]!.map(Math.abs);
        const js = state.map((a) => a.slice());
        const w = state.map((a) => place(a, mode === 1));
        for (let t = 1; t <= 3; t++) {
          const step: AdamStep = {
            mode,
            decay: 1 - 0.003 * 0.01,
            weightDecay: 0.01,
            beta1: 0.9,
            oneMinusBeta1: 1 - 0.9,
            beta2: 0.999,
            oneMinusBeta2: 1 - 0.999,
            stepSize: 0.003 / (1 - 0.9 ** t),
            biasCorrection2Sqrt: Math.sqrt(1 - 0.999 ** t),
            eps: 1e-8,
          };
          referenceKernels.adamStep(js[0]!, js[1]!, js[2]!, js[3]!, step);
          wasm.adamStep(w[0]!, w[1]!, w[2]!, w[3]!, step);
        }
        for (let i = 0; i < 4; i++)
          expectSameBits(w[i]!, js[i]!, `adam mode ${mode}, ${length} values, array ${i}`);
      }
      for (const [momentum, nesterov] of [
        [0, false],
        [0.9, false],
        [0.9, true],
      ] as const) {
        const theta = random(length);
        const grad = sparse(length);
        const js = { theta: theta.slice(), buf: momentum ? new Float32Array(length) : undefined };
        const w = {
          theta: place(theta, nesterov),
          buf: momentum ? place(new Float32Array(length), nesterov) : undefined,
        };
        for (let t = 1; t <= 3; t++) {
          const step: SgdStep = {
            lr: 0.1,
            weightDecay: 1e-4,
            momentum,
            oneMinusDampening: 1 - 0.1,
            first: t === 1,
            nesterov,
          };
          referenceKernels.sgdStep(js.theta, grad, js.buf, step);
          wasm.sgdStep(w.theta, place(grad, nesterov), w.buf, step);
        }
        expectSameBits(w.theta, js.theta, `sgd momentum ${momentum} nesterov ${nesterov}`);
        if (js.buf && w.buf) expectSameBits(w.buf, js.buf, 'sgd buffer');
      }
    }
  });
});

describe('layers on the wasm kernels = on the js reference, bit for bit', () => {
  /** Two copies of a network with the same initial weights, one moved onto the wasm kernels. */
  const pair = (build: (rng: Rng) => Module): [Module, Module] => {
    const js = build(new Rng(11));
    const w = build(new Rng(11)).useKernels(new WasmKernels());
    return [js, w];
  };
  const networks: [string, () => [Module, Module], number[]][] = [
    [
      'Linear → BatchNorm1d → ReLU → Linear, AdamW',
      () =>
        pair(
          (rng) =>
            new Sequential([
              new Linear({ inFeatures: 13, outFeatures: 9 }, rng),
              new BatchNorm1d({ numFeatures: 9 }),
              new ReLU(),
              new Linear({ inFeatures: 9, outFeatures: 5 }, rng),
            ]),
        ),
      [7, 13],
    ],
    [
      'Conv2d → BatchNorm2d → ReLU → Conv2d (stride 2, padding 1), AdamW',
      () =>
        pair(
          (rng) =>
            new Sequential([
              new Conv2d(
                { inChannels: 2, outChannels: 5, kernelSize: [3, 3], padding: [1, 1] },
                rng,
              ),
              new BatchNorm2d({ numFeatures: 5 }),
              new ReLU(),
              new Conv2d(
                {
                  inChannels: 5,
                  outChannels: 3,
                  kernelSize: [3, 3],
                  stride: [2, 2],
                  padding: [1, 1],
                },
                rng,
              ),
            ]),
        ),
      [3, 2, 6, 5],
    ],
  ];
  for (const [name, make, shape] of networks) {
    it(`${name}: outputs, input gradients, parameter gradients and three steps`, () => {
      const [js, w] = make();
      const optimizers = [js, w].map(
        (net) => new AdamW(net.parameters(), { lr: 0.01, weightDecay: 0.01, kernels: net.kernels }),
      );
      const data = new Rng(5);
      for (let step = 0; step < 3; step++) {
        const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () =>
          data.uniform(-2, 2),
        );
        const outs = [js, w].map((net) => net.forward(new Tensor(x.slice(), shape)));
        expectSameBits(outs[1]!.data, outs[0]!.data, `${name} step ${step}: output`);
        const g = Float32Array.from({ length: outs[0]!.numel }, () => data.uniform(-1, 1));
        const dx = [js, w].map((net, i) => {
          optimizers[i]!.zeroGrad();
          return net.backward(new Tensor(g.slice(), outs[0]!.shape));
        });
        expectSameBits(dx[1]!.data, dx[0]!.data, `${name} step ${step}: input gradient`);
        const [pj, pw] = [js, w].map((net) => net.namedParameters());
        for (const [i, [key, p]] of pj!.entries())
          expectSameBits(pw![i]![1].grad, p.grad, `${name} step ${step}: ${key}.grad`);
        for (const o of optimizers) o.step();
        for (const [i, [key, p]] of pj!.entries())
          expectSameBits(pw![i]![1].value.data, p.value.data, `${name} step ${step}: ${key}`);
      }
    });
  }
});
