/**
 * Engine throughput, measured side by side in one process: rows/s of normserve's executors on the
 * same fused plans — the WebAssembly SIMD engine (one thread; with and without relaxed-SIMD FMA;
 * two threads for big batches), the plain-JavaScript reference executor and the unfused eval path
 * — for the bundled digits model and a wide 784-1024-1024-10 BatchNorm MLP, at batch 1, 32, 256
 * and 4096; GFLOP/s of each dense kernel alone; the cold load time of a model version; RSS after
 * 1 k and 100 k predictions.
 *
 * Method: per model and batch, `rounds` rounds measure every engine for about `budgetMs` each, in
 * an order rotated by one per round (so a shared machine's drifts spread over all of them); the
 * figure is each engine's median round.
 */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  type CompiledPlan,
  detectWasmSupport,
  type Executor,
  PlanExecutor,
  type PlanStep,
  WasmExecutor,
} from '../src/inference/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../src/service/index.js';
import { benchInput, benchModels } from './models.js';

const runChild = promisify(execFile);
type DenseStep = Extract<PlanStep, { op: 'dense' }>;

export interface EngineRow {
  model: string;
  batch: number;
  engine: string;
  rowsPerSecond: number;
  /** Floating-point operations per second of the whole plan (2 per multiply-add of the dense layers). */
  gflops: number;
  rounds: number[];
}

export interface KernelRow {
  model: string;
  /** e.g. "784→1024 relu". */
  kernel: string;
  batch: number;
  gflopsFma: number | undefined;
  gflopsMulAdd: number;
}

export interface EngineBench {
  relaxedSimd: boolean;
  rows: EngineRow[];
  kernels: KernelRow[];
  /** loadModel('models/digits') in a fresh process: median and all runs, ms. */
  loadMs: { median: number; runs: number[]; warm: number };
  /** RSS of a process predicting one row at a time through loadModel, MiB. */
  memory: { afterThousandMiB: number; afterHundredThousandMiB: number; ratio: number };
}

export interface EngineBenchOptions {
  budgetMs?: number;
  rounds?: number;
  batches?: number[];
  log?: (line: string) => void;
}

/** Calls per second of fn over about budgetMs, timed in blocks so the clock is read rarely. */
function rate(fn: () => void, budgetMs: number): number {
  let block = 1;
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < budgetMs || calls < 2) {
    const t = performance.now();
    for (let i = 0; i < block; i++) fn();
    calls += block;
    const now = performance.now();
    if (now - t < 1) block *= 2;
    elapsed = now - start;
  }
  return (calls * 1000) / elapsed;
}

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const denseFlops = (plan: CompiledPlan): number =>
  plan.steps.reduce((f, s) => f + (s.op === 'dense' ? 2 * s.inFeatures * s.outFeatures : 0), 0);

/** A plan of one dense step: the GEMM with its fused epilogue, on its own. */
const kernelPlan = (step: DenseStep): CompiledPlan => ({
  inputWidth: step.inFeatures,
  outputWidth: step.outFeatures,
  maxWidth: Math.max(step.inFeatures, step.outFeatures),
  steps: [step],
  layers: [],
  inputTransformFolded: false,
});

/** A child process's result line: `node --import tsx -e <code>` from the repository root. */
async function child(code: string): Promise<string> {
  const { stdout } = await runChild(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', code],
    {
      cwd: resolve('.'),
      timeout: 300_000,
    },
  );
  return stdout.trim();
}

export async function benchEngine(options: EngineBenchOptions = {}): Promise<EngineBench> {
  const budgetMs = options.budgetMs ?? 300;
  const rounds = options.rounds ?? 3;
  const batches = options.batches ?? [1, 32, 256, 4096];
  const log = options.log ?? (() => {});
  prepareWasmRuntime();
  const relaxedSimd = detectWasmSupport().relaxedSimd;
  const { spawnHelper } = nodeEngineOptions({});
  const models = await benchModels();
  const rows: EngineRow[] = [];
  const kernels: KernelRow[] = [];
  const closers: Executor[] = [];

  for (const { name, model, inputWidth } of models) {
    const plan = model.plan;
    const flopsPerRow = denseFlops(plan);
    const wasm = (fma: boolean, threads = 1) => {
      const e = new WasmExecutor(plan, {
        maxBatchSize: 4096,
        threads,
        relaxedSimd: fma,
        spawnHelper,
      });
      closers.push(e);
      return e;
    };
    const one = wasm(relaxedSimd);
    const two = wasm(relaxedSimd, 2);
    await two.ready();
    const engines: {
      name: string;
      run: (x: Float32Array, n: number) => unknown;
      batches?: number[];
    }[] = [{ name: 'wasm', run: (x, n) => one.run(x, n) }];
    if (relaxedSimd) {
      const noFma = wasm(false);
      engines.push({ name: 'wasm, no FMA', run: (x, n) => noFma.run(x, n) });
    }
    engines.push({ name: 'wasm, 2 threads', run: (x, n) => two.run(x, n), batches: [256, 4096] });
    const js = new PlanExecutor(plan, 4096);
    engines.push({ name: 'js', run: (x, n) => js.run(x, n) });
    engines.push({
      name: 'unfused',
      run: (x, n) => model.reference(x, n),
      batches: batches.filter((b) => b <= 256),
    });

    for (const batch of batches) {
      const input = benchInput(batch, inputWidth);
      const active = engines.filter((e) => !e.batches || e.batches.includes(batch));
      const measured = new Map<string, number[]>(active.map((e) => [e.name, []]));
      for (const e of active) e.run(input, batch); // warm-up
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < active.length; i++) {
          const e = active[(i + r) % active.length]!;
          measured.get(e.name)!.push(rate(() => e.run(input, batch), budgetMs) * batch);
        }
      }
      for (const e of active) {
        const perRound = measured.get(e.name)!;
        const rowsPerSecond = median(perRound);
        rows.push({
          model: name,
          batch,
          engine: e.name,
          rowsPerSecond,
          gflops: (rowsPerSecond * flopsPerRow) / 1e9,
          rounds: perRound,
        });
        log(
          `${name.padEnd(24)} ${String(batch).padStart(5)} ${e.name.padEnd(16)} ${Math.round(rowsPerSecond).toLocaleString('en-US').padStart(12)} rows/s`,
        );
      }
    }

    // Each dense kernel alone: its GEMM and fused epilogue (plus copying its input in and out).
    for (const step of plan.steps.filter((s): s is DenseStep => s.op === 'dense')) {
      const kPlan = kernelPlan(step);
      const flops = 2 * step.inFeatures * step.outFeatures;
      for (const batch of [256, 4096]) {
        const input = benchInput(batch, step.inFeatures);
        const gflops = (fma: boolean) => {
          const e = new WasmExecutor(kPlan, { maxBatchSize: 4096, threads: 1, relaxedSimd: fma });
          e.run(input, batch);
          return (
            (median(
              Array.from({ length: rounds }, () => rate(() => e.run(input, batch), budgetMs / 2)),
            ) *
              batch *
              flops) /
            1e9
          );
        };
        kernels.push({
          model: name,
          kernel: `${step.inFeatures}→${step.outFeatures} ${step.activation.kind}`,
          batch,
          gflopsFma: relaxedSimd ? gflops(true) : undefined,
          gflopsMulAdd: gflops(false),
        });
      }
    }
  }
  for (const e of closers) e.close();

  // Cold load: a fresh process each time (module assembly, compilation, packing included).
  const loadCode = `const t = performance.now();
const { loadModel } = await import('./src/index.ts');
const i = performance.now();
const m = await loadModel('models/digits');
const loaded = performance.now();
const again = await loadModel('models/digits');
console.log(JSON.stringify({ importMs: i - t, loadMs: loaded - i, warmMs: performance.now() - loaded, engine: m.engine + again.engine }));`;
  const loads: { loadMs: number; warmMs: number }[] = [];
  for (let r = 0; r < 5; r++) loads.push(JSON.parse(await child(loadCode)));
  const loadMs = {
    median: median(loads.map((l) => l.loadMs)),
    runs: loads.map((l) => l.loadMs),
    warm: median(loads.map((l) => l.warmMs)),
  };
  log(
    `load digits: median ${loadMs.median.toFixed(1)} ms cold (runs ${loadMs.runs.map((m) => m.toFixed(1)).join(', ')}), ${loadMs.warm.toFixed(1)} ms warm`,
  );

  const memoryCode = `const { loadModel } = await import('./src/index.ts');
const m = await loadModel('models/digits');
const x = new Float32Array(64).fill(5);
let s = 0;
for (let i = 0; i < 1000; i++) s += m.run(x, 1)[0];
const a = process.memoryUsage().rss;
for (let i = 0; i < 99000; i++) s += m.run(x, 1)[0];
const b = process.memoryUsage().rss;
console.log(JSON.stringify({ a, b, s: Number.isFinite(s) }));`;
  const mem = JSON.parse(await child(memoryCode)) as { a: number; b: number };
  const memory = {
    afterThousandMiB: mem.a / 2 ** 20,
    afterHundredThousandMiB: mem.b / 2 ** 20,
    ratio: mem.b / mem.a,
  };
  log(
    `RSS after 1 k predictions ${memory.afterThousandMiB.toFixed(1)} MiB, after 100 k ${memory.afterHundredThousandMiB.toFixed(1)} MiB`,
  );
  return { relaxedSimd, rows, kernels, loadMs, memory };
}
