/**
 * A/B of the engine's GEMM with its fused epilogue between two source trees, in one process:
 * the digits model's dense shapes (64→128 and 128→64 with ReLU, 64→10 without) at 256 rows and
 * 64→128 at 4096, operands in the engine's memory, B packed once — what `engine.ts`'s kernel
 * table times — alternating the trees round by round (15 rounds of 0.1 CPU-second per kernel and
 * tree), GFLOP per CPU-second (process.cpuUsage: on a machine shared with other work, CPU time
 * moves far less than the wall clock), the median round.
 *
 *   git archive <commit> src | tar -x -C /tmp/base && ln -s "$PWD/node_modules" /tmp/base/
 *   npx tsx bench/gemm-ab.ts /tmp/base .            # separate multiplies and adds
 *   npx tsx bench/gemm-ab.ts /tmp/base . relaxed    # relaxed-SIMD FMA
 *
 * Each tree's ReLU slope is its own `RELU_SLOPE` (nn/wasm/gemm-wat.ts), +0 for trees from
 * before it existed (their epilogue read +0 as ReLU).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Rng } from '../src/nn/index.js';

const [baseArg, newArg, mode] = process.argv.slice(2);
if (!baseArg || !newArg)
  throw new Error('usage: npx tsx bench/gemm-ab.ts <base tree> <new tree> [relaxed]');
const relaxed = mode === 'relaxed';
const NR = 8;
const SHAPES = [
  [64, 128, 'relu', 256],
  [128, 64, 'relu', 256],
  [64, 10, 'none', 256],
  [64, 128, 'relu', 4096],
] as const;
const ROUNDS = 15;
const CPU_SECONDS_PER_ROUND = 0.1;

interface Kernel {
  name: string;
  flops: number;
  call: () => void;
}

const load = (root: string, path: string) => import(pathToFileURL(resolve(root, path)).href);

async function kernels(root: string): Promise<Kernel[]> {
  const { prepareWasmRuntime } = await load(root, 'src/service/index.ts');
  prepareWasmRuntime();
  const { engineModule, instantiateEngine } = await load(
    root,
    'src/inference/wasm/engine-module.ts',
  );
  const gemmText = await load(root, 'src/nn/wasm/gemm-wat.ts');
  const reluSlope: number = gemmText.RELU_SLOPE ?? 0;
  return SHAPES.map(([k, n, act, rows]) => {
    const at = { a: 1024, b: 0, bias: 0, c: 0, tmp: 0 };
    at.b = at.a + rows * k * 4 + 64;
    at.bias = at.b + Math.ceil(n / NR) * NR * k * 4 + 64;
    at.c = at.bias + Math.ceil(n / NR) * NR * 4 + 64;
    at.tmp = at.c + rows * n * 4 + 64;
    const pages = Math.ceil((at.tmp + 256) / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const x = instantiateEngine(engineModule(relaxed), memory);
    const heap = new Float32Array(memory.buffer);
    const rng = new Rng(1);
    for (let i = 0; i < k * n; i++) heap[(at.a >> 2) + i] = rng.normal();
    x.pack_b(at.a, 4, k * 4, k, n, at.b);
    for (let i = 0; i < n; i++) heap[(at.bias >> 2) + i] = rng.normal();
    for (let i = 0; i < rows * k; i++) heap[(at.a >> 2) + i] = rng.normal();
    const slope = act === 'relu' ? reluSlope : 1;
    const call = () => x.gemm(rows, n, k, at.a, k * 4, at.b, at.bias, at.c, n * 4, slope, at.tmp);
    for (let i = 0; i < 300; i++) call();
    return { name: `${k}→${n} ${act} ×${rows}`, flops: 2 * rows * k * n, call };
  });
}

const cpuSeconds = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};
const median = (values: number[]) => [...values].sort((p, q) => p - q)[values.length >> 1]!;

const trees = { base: await kernels(baseArg), new: await kernels(newArg) };
const rates = { base: SHAPES.map((): number[] => []), new: SHAPES.map((): number[] => []) };
for (let round = 0; round < ROUNDS; round++) {
  for (const tree of round % 2 ? (['new', 'base'] as const) : (['base', 'new'] as const)) {
    trees[tree].forEach((kernel, i) => {
      let calls = 0;
      const start = cpuSeconds();
      while (cpuSeconds() - start < CPU_SECONDS_PER_ROUND) {
        for (let j = 0; j < 10; j++) kernel.call();
        calls += 10;
      }
      rates[tree][i]!.push((calls * kernel.flops) / (cpuSeconds() - start) / 1e9);
    });
  }
}
console.log(
  `GEMM + epilogue, GFLOP per CPU-second (median of ${ROUNDS} alternated rounds), ${relaxed ? 'relaxed FMA' : 'mul+add'}`,
);
trees.base.forEach((kernel, i) => {
  const b = median(rates.base[i]!);
  const n = median(rates.new[i]!);
  console.log(
    `${kernel.name.padEnd(20)} base ${b.toFixed(1).padStart(6)}  new ${n.toFixed(1).padStart(6)}  new/base ${(n / b).toFixed(3)}`,
  );
});
