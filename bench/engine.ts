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
import { engineModule, instantiateEngine } from '../src/inference/wasm/engine-module.js';
import { NR, RELU_SLOPE } from '../src/nn/wasm/index.js';
import { nodeEngineOptions, prepareWasmRuntime } from '../src/service/index.js';
import { bundledVersionDir } from '../test/helpers/bundled-models.js';
import { benchInput, benchModels } from './models.js';
import { measureWasmPeak, type WasmPeak } from './wasm-peak.js';

const runChild = promisify(execFile);
type DenseStep = Extract<PlanStep, { op: 'dense' }>;

export interface EngineRow {
  model: string;
  batch: number;
  engine: string;
  rowsPerSecond: number;
  /**
   * CPU time of the whole process (every thread) per 1000 rows, median round, ms: on a busy
   * machine wall-clock rows/s depend on the other load, CPU time per row much less.
   */
  cpuMsPerThousandRows: number;
  /** Floating-point operations per second of the whole plan (2 per multiply-add of the dense and convolution layers). */
  gflops: number;
  rounds: number[];
}

/** A dense kernel alone: its GEMM (and epilogue) on operands in the engine's memory. */
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
  /**
   * loadModel('models/digits/1') in a fresh process: median and all runs (wall clock, ms), the
   * median CPU time of the process meanwhile (ms), and a second load in the same process.
   */
  loadMs: { median: number; runs: number[]; cpuMedian: number; warm: number };
  /**
   * RSS of a process predicting one row at a time through loadModel, MiB, after 1 k, 50 k, 100 k
   * and 200 k predictions; V8's young generation (new space) as reserved and as used at 1 k, and
   * as reserved at 100 k; the heap after a full collection at 1 k and at 100 k.
   */
  memory: {
    afterThousandMiB: number;
    afterFiftyThousandMiB: number;
    afterHundredThousandMiB: number;
    afterTwoHundredThousandMiB: number;
    ratio: number;
    newSpaceMiB: number;
    newSpaceUsedAtThousandMiB: number;
    newSpaceAtHundredThousandMiB: number;
    liveHeapAtThousandMiB: number;
    liveHeapAtHundredThousandMiB: number;
  };
  /** The WebAssembly SIMD ceiling of one thread (bench/wasm-peak.ts). */
  peak: WasmPeak;
  /** Floating-point operations per row of each model's plan (2 per multiply-add). */
  flopsPerRow: Record<string, number>;
}

export interface EngineBenchOptions {
  budgetMs?: number;
  rounds?: number;
  batches?: number[];
  log?: (line: string) => void;
}

const cpuMs = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

/**
 * Calls per second of fn over about budgetMs, timed in blocks so the clock is read rarely, and
 * the process's CPU time per call (ms).
 */
function rate(fn: () => void, budgetMs: number): { perSecond: number; cpuMsPerCall: number } {
  let block = 1;
  let calls = 0;
  const start = performance.now();
  const cpuStart = cpuMs();
  let elapsed = 0;
  while (elapsed < budgetMs || calls < 2) {
    const t = performance.now();
    for (let i = 0; i < block; i++) fn();
    calls += block;
    const now = performance.now();
    if (now - t < 1) block *= 2;
    elapsed = now - start;
  }
  return { perSecond: (calls * 1000) / elapsed, cpuMsPerCall: (cpuMs() - cpuStart) / calls };
}

const median = (values: number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

/** Multiply-adds ×2 per row: dense layers in·out, convolutions out·C·kh·kw per output position. */
function planFlops(plan: CompiledPlan): number {
  let flops = 0;
  for (const s of plan.steps) {
    if (s.op === 'dense') flops += 2 * s.inFeatures * s.outFeatures;
    if (s.op === 'conv2d') {
      const g = s.geometry;
      flops += 2 * s.outChannels * g.channels * g.kernel[0] * g.kernel[1] * g.outH * g.outW;
    }
  }
  return flops;
}

/**
 * One dense step's GEMM on `rows` rows of operands placed in a memory of its own: returns a call
 * of the engine's gemm export (A [rows, in], packed B, bias, C [rows, out], the step's epilogue).
 */
function gemmOnly(step: DenseStep, rows: number, relaxed: boolean): () => void {
  const k = step.inFeatures;
  const n = step.outFeatures;
  const at = { a: 1024, b: 0, bias: 0, c: 0, tmp: 0, end: 0 };
  at.b = at.a + rows * k * 4 + 64;
  at.bias = at.b + Math.ceil(n / NR) * NR * k * 4 + 64;
  at.c = at.bias + Math.ceil(n / NR) * NR * 4 + 64;
  at.tmp = at.c + rows * n * 4 + 64;
  at.end = at.tmp + 256;
  const pages = Math.ceil(Math.max(at.end, at.a + k * n * 4 + 64) / 65536);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const x = instantiateEngine(engineModule(relaxed), memory);
  const heap = new Float32Array(memory.buffer);
  heap.set(step.weight, at.a >> 2);
  x.pack_b(at.a, 4, k * 4, k, n, at.b);
  heap.set(step.bias, at.bias >> 2);
  heap.set(benchInput(rows, k), at.a >> 2);
  const slope = step.activation.kind === 'relu' ? RELU_SLOPE : 1;
  return () => x.gemm(rows, n, k, at.a, k * 4, at.b, at.bias, at.c, n * 4, slope, at.tmp);
}

/** A child process's result line: `node --import tsx -e <code>` from the repository root. */
async function child(code: string, nodeFlags: string[] = []): Promise<string> {
  const { stdout } = await runChild(
    process.execPath,
    [...nodeFlags, '--import', 'tsx', '--input-type=module', '-e', code],
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
  const flopsByModel: Record<string, number> = {};
  const rows: EngineRow[] = [];
  const kernels: KernelRow[] = [];
  const closers: Executor[] = [];

  for (const { name, model, inputWidth, batches: only } of models) {
    const plan = model.plan;
    const flopsPerRow = planFlops(plan);
    flopsByModel[name] = flopsPerRow;
    const convolutional = plan.steps.some((s) => s.op === 'conv2d');
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

    for (const batch of batches.filter((b) => !only || only.includes(b))) {
      const input = benchInput(batch, inputWidth);
      const active = engines.filter((e) => !e.batches || e.batches.includes(batch));
      const measured = new Map<string, number[]>(active.map((e) => [e.name, []]));
      const cpu = new Map<string, number[]>(active.map((e) => [e.name, []]));
      for (const e of active) e.run(input, batch); // warm-up
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < active.length; i++) {
          const e = active[(i + r) % active.length]!;
          const { perSecond, cpuMsPerCall } = rate(() => e.run(input, batch), budgetMs);
          measured.get(e.name)!.push(perSecond * batch);
          cpu.get(e.name)!.push((cpuMsPerCall * 1000) / batch);
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
          cpuMsPerThousandRows: median(cpu.get(e.name)!),
          gflops: (rowsPerSecond * flopsPerRow) / 1e9,
          rounds: perRound,
        });
        log(
          `${name.padEnd(24)} ${String(batch).padStart(5)} ${e.name.padEnd(16)} ${Math.round(rowsPerSecond).toLocaleString('en-US').padStart(12)} rows/s`,
        );
      }
    }

    // Each dense kernel alone (the MLPs'): the GEMM with its fused epilogue on operands already
    // in the engine's memory (no copying in or out), B packed once.
    const dense = convolutional ? [] : plan.steps.filter((s): s is DenseStep => s.op === 'dense');
    for (const step of dense) {
      const flops = 2 * step.inFeatures * step.outFeatures;
      for (const batch of [256, 4096]) {
        const gflops = (fma: boolean) => {
          const gemm = gemmOnly(step, batch, fma);
          gemm();
          const perRound = Array.from({ length: rounds }, () => rate(gemm, budgetMs / 2).perSecond);
          return (median(perRound) * batch * flops) / 1e9;
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

  // The ceiling: register-only f32x4 multiply-add chains, measured like the kernels above.
  const peak = measureWasmPeak(relaxedSimd, Math.max(5, rounds * 3), budgetMs / 2);
  log(
    `wasm peak: FMA ${peak.fmaGflops?.toFixed(1) ?? '—'} GFLOP/s, mul+add ${peak.mulAddGflops.toFixed(1)} GFLOP/s`,
  );

  // Cold load: a fresh process each time (module assembly, compilation, packing included).
  const loadCode = `const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const t = performance.now();
const { loadModel } = await import('./src/index.ts');
const i = performance.now();
const c = cpu();
const m = await loadModel(${JSON.stringify(bundledVersionDir('digits'))});
const loaded = performance.now();
const cpuMs = cpu() - c;
const again = await loadModel(${JSON.stringify(bundledVersionDir('digits'))});
console.log(JSON.stringify({ importMs: i - t, loadMs: loaded - i, cpuMs, warmMs: performance.now() - loaded, engine: m.engine + again.engine }));`;
  const loads: { loadMs: number; cpuMs: number; warmMs: number }[] = [];
  for (let r = 0; r < 5; r++) loads.push(JSON.parse(await child(loadCode)));
  const loadMs = {
    median: median(loads.map((l) => l.loadMs)),
    runs: loads.map((l) => l.loadMs),
    cpuMedian: median(loads.map((l) => l.cpuMs)),
    warm: median(loads.map((l) => l.warmMs)),
  };
  log(
    `load digits: median ${loadMs.median.toFixed(1)} ms cold (CPU ${loadMs.cpuMedian.toFixed(1)} ms) (runs ${loadMs.runs.map((m) => m.toFixed(1)).join(', ')}), ${loadMs.warm.toFixed(1)} ms warm`,
  );

  // Why these readings: each run() returns a fresh Float32Array (~250 bytes of garbage a call),
  // so the first 100 k calls or so walk V8's young generation (the new space, which V8 also
  // doubles as it sees the allocation rate) into RSS page by page; after that RSS is flat. The
  // 200 k reading shows that plateau; the new space's size at 1 k and 100 k how much of the
  // growth it is; and the heap after a full collection (gc(), the child runs with --expose-gc)
  // is what a leak — anything a call keeps — would grow.
  const memoryCode = `const { loadModel } = await import('./src/index.ts');
const v8 = await import('node:v8');
const m = await loadModel(${JSON.stringify(bundledVersionDir('digits'))});
const x = new Float32Array(64).fill(5);
let s = 0;
const predict = (n) => { for (let i = 0; i < n; i++) s += m.run(x, 1)[0]; };
const newSpace = () => v8.getHeapSpaceStatistics().find((h) => h.space_name === 'new_space');
const liveHeap = () => { globalThis.gc(); return process.memoryUsage().heapUsed; };
predict(1000);
const a = process.memoryUsage().rss;
const young = newSpace();
const heapA = liveHeap();
predict(49000);
const h = process.memoryUsage().rss;
predict(50000);
const b = process.memoryUsage().rss;
const nsB = newSpace().space_size;
const heapB = liveHeap();
predict(100000);
const c = process.memoryUsage().rss;
console.log(JSON.stringify({ a, h, b, c, ns: young.space_size, nu: young.space_used_size, nsB, heapA, heapB, s: Number.isFinite(s) }));`;
  const mem = JSON.parse(await child(memoryCode, ['--expose-gc'])) as {
    a: number;
    h: number;
    b: number;
    c: number;
    ns: number;
    nu: number;
    nsB: number;
    heapA: number;
    heapB: number;
  };
  const mib = (bytes: number) => bytes / 2 ** 20;
  const memory = {
    afterThousandMiB: mib(mem.a),
    afterFiftyThousandMiB: mib(mem.h),
    afterHundredThousandMiB: mib(mem.b),
    afterTwoHundredThousandMiB: mib(mem.c),
    ratio: mem.b / mem.a,
    newSpaceMiB: mib(mem.ns),
    newSpaceUsedAtThousandMiB: mib(mem.nu),
    newSpaceAtHundredThousandMiB: mib(mem.nsB),
    liveHeapAtThousandMiB: mib(mem.heapA),
    liveHeapAtHundredThousandMiB: mib(mem.heapB),
  };
  log(
    `RSS after 1 k predictions ${memory.afterThousandMiB.toFixed(1)} MiB, after 50 k ${memory.afterFiftyThousandMiB.toFixed(1)} MiB, after 100 k ${memory.afterHundredThousandMiB.toFixed(1)} MiB, after 200 k ${memory.afterTwoHundredThousandMiB.toFixed(1)} MiB`,
  );
  return { relaxedSimd, rows, kernels, loadMs, memory, peak, flopsPerRow: flopsByModel };
}
