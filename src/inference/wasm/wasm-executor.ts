import type { Sliced } from '../../nn/index.js';
import { MR, WASM_PAGE_BYTES } from '../../nn/wasm/index.js';
import { checkRunArguments, checkSameStructure, type Executor } from '../executor.js';
import { type Activation, type CompiledPlan, stepTraits } from '../plan.js';
import { planFlopsPerRow } from '../plan-flops.js';
import {
  checkTaps,
  type StatisticsProbe,
  type StatisticsTap,
  tappedWidth,
} from '../statistics-probe.js';
import { type EngineExports, engineModule, instantiateEngine, MAX_PAGES } from './engine-module.js';
import { holdEventLoop, releaseEventLoop } from './event-loop-hold.js';
import {
  executorThreads,
  type Helper,
  HelperPool,
  type HelperSpawner,
  type Share,
} from './helper-pool.js';
import { type Layout, planLayout, ROW_SLACK } from './memory-layout.js';
import { type EngineParts, OP, PROGRAM } from './program-wat.js';
import { WasmProbe } from './wasm-probe.js';
import { writeProgram, writingProgram } from './write-program.js';

/**
 * The smallest operating-system page (x86-64; arm64 Linux's 4 KiB kernels): prefault touches one
 * word per 4 KiB, which reaches every page of larger (16 or 64 KiB) pages too.
 */
const PAGE_BYTES = 4096;

export interface WasmExecutorOptions {
  /** Rows the I/O regions hold; larger batches run through them in turns. */
  maxBatchSize: number;
  /** Threads for large batches, the calling one included (helpers need `spawnHelper`). */
  threads: number;
  /** Fused multiply-add in the GEMM (relaxed SIMD); the runtime must support it. */
  relaxedSimd: boolean;
  spawnHelper?: HelperSpawner | undefined;
  /**
   * How dense steps add their products: 'float32' (the default: the fast GEMM) or 'float64' (the
   * float64-accumulating GEMM, half its speed; what statistics plans use, nn/wasm/gemm64-wat.ts).
   */
  denseAccumulation?: DenseAccumulation | undefined;
  /** Least floating-point work in one call worth waking the helpers for. */
  parallelMinFlops?: number | undefined;
}

export type DenseAccumulation = 'float32' | 'float64';

const DEFAULT_PARALLEL_MIN_FLOPS = 4e6;
/**
 * Why the WASM engine cannot run `plan` with `threads` threads, or undefined when it can: the
 * executor's own layout (whose I/O regions shrink to fit) must fit in wasm32's 4 GiB with one row.
 */
export function wasmUnsupportedReason(
  plan: CompiledPlan,
  threads = 1,
  denseAccumulation: DenseAccumulation = 'float32',
): string | undefined {
  const ops = new Set<string>(Object.keys(OP));
  const unsupported = plan.steps.filter((s) => !ops.has(s.op)).map((s) => s.op);
  if (unsupported.length > 0)
    return `the wasm engine has no kernel for plan step(s) ${[...new Set(unsupported)].join(', ')}`;
  const pages =
    planLayout(plan, 1, threads, denseAccumulation === 'float64').bytes / WASM_PAGE_BYTES;
  if (pages > MAX_PAGES)
    return `the model needs ${Math.ceil(pages)} pages of memory (limit ${MAX_PAGES})`;
  return undefined;
}

/** The activations the GEMM's store applies itself (without the element-wise part). */
const GEMM_STORE_ACTIVATIONS: ReadonlySet<Activation['kind']> = new Set([
  'none',
  'relu',
  'leaky_relu',
]);

/**
 * The parts of the engine module a plan needs (a smaller module loads sooner): element-wise for
 * steps and activations the GEMM's store does not cover, cnn for convolutions, pooling and skips.
 */
export function planParts(plan: CompiledPlan): EngineParts {
  const cnn = plan.steps.some((s) => stepTraits(s).family === 'cnn');
  const elementwise = plan.steps.some(
    (s) => stepTraits(s).family === 'elementwise' || !GEMM_STORE_ACTIVATIONS.has(s.activation.kind),
  );
  return { elementwise, cnn };
}

/**
 * One runAsync or accumulateAsync call: its rows go through the I/O regions in passes of at most
 * ioRows rows.
 */
interface AsyncCall {
  input: Float32Array;
  rows: number;
  probe: StatisticsProbe | undefined;
  /** Where the outputs go (runAsync); none for accumulateAsync, which has a probe. */
  out: Float32Array | undefined;
  /** Rows handed to the engine so far. */
  next: number;
  resolve: (out: Float32Array | undefined) => void;
  reject: (error: unknown) => void;
}

/** A pass of an async call in flight: rows r0 … r1−1 of the I/O regions on each helper. */
interface AsyncPass {
  call: AsyncCall;
  rows: number;
  /** The call's probe, pointed at by the program for this pass (begin). */
  taps: WasmProbe | undefined;
  shares: Share[];
  /** Set when the pass has ended (finishPass): a wait for its shares then stops (awaitShares). */
  finished: boolean;
}

/**
 * Runs a compiled plan on the WebAssembly SIMD engine. One shared linear memory per executor
 * (i.e. per model version) holds the program, the weights packed once for the GEMM, the I/O
 * regions and each thread's scratch; it is sized here and never grows, so a call allocates
 * nothing but its result. A batch with enough work is split by rows between the calling thread
 * and the helper threads, which run the same code on the same memory; rows are independent and
 * computed identically wherever they run, so the result is the same bit for bit.
 */
export class WasmExecutor implements Executor {
  readonly engine = 'wasm' as const;
  plan: CompiledPlan;
  readonly threads: number;
  readonly relaxedSimd: boolean;
  private readonly layout: Layout;
  private readonly exports: EngineExports;
  private readonly heap: Float32Array;
  private readonly words: Int32Array;
  private readonly f64: Float64Array;
  private readonly memory: WebAssembly.Memory;
  private flopsPerRow: number;
  /** The probe whose tap table is in memory. */
  private written: WasmProbe | undefined;
  /**
   * The probe whose sums run() is adding to the accumulators, collected only when they are read
   * (probe.sums), another probe takes the accumulators, or the parameters change: live drift taps
   * every served call, and zeroing and collecting every channel of every thread per call cost a
   * 1-row call as much as its two GEMMs.
   */
  private resident: WasmProbe | undefined;
  private readonly parallelMinFlops: number;
  private readonly pool: HelperPool;
  /** runAsync calls not yet answered, oldest first; a pass in flight belongs to the first. */
  private readonly calls: AsyncCall[] = [];
  /** The pass of rows running on helper threads for calls[0], if any. */
  private pass: AsyncPass | undefined;
  private offloadedPasses = 0;
  /**
   * What prefault has left to back, as [from, to) byte ranges, and how far into the first it has
   * got: made at its first call, for that call's rows.
   */
  private prefaultRanges: [number, number][] | undefined;

  /**
   * The executor of `plan`, built in slices (nn/slices.ts): the memory sized and the module
   * instantiated at once, the program and the weights written a slice at a time (writingProgram).
   */
  static *building(plan: CompiledPlan, options: WasmExecutorOptions): Sliced<WasmExecutor> {
    const executor = new WasmExecutor(plan, options, false);
    yield* writingProgram(plan, executor.layout, executor.memory, executor.exports);
    return executor;
  }

  /** `writeNow` false: the program is left for `building` to write (the executor is not usable before). */
  constructor(plan: CompiledPlan, options: WasmExecutorOptions, writeNow = true) {
    this.plan = plan;
    this.relaxedSimd = options.relaxedSimd;
    const threads = executorThreads(options.threads, options.spawnHelper);
    this.threads = threads;
    this.parallelMinFlops = options.parallelMinFlops ?? DEFAULT_PARALLEL_MIN_FLOPS;
    const layout = planLayout(
      plan,
      options.maxBatchSize,
      threads,
      options.denseAccumulation === 'float64',
    );
    this.layout = layout;
    const pages = Math.ceil(layout.bytes / WASM_PAGE_BYTES);
    if (pages > MAX_PAGES)
      throw new RangeError(wasmUnsupportedReason(plan, threads, options.denseAccumulation));
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    // Statistics need the element-wise part whatever the plan: a pre-activation tap applies the
    // activation after reading (act_pass), and dense64 stores through store_partial. Probes are
    // created after construction (live drift taps the serving executor), so every executor has it.
    const module = engineModule(options.relaxedSimd, { ...planParts(plan), elementwise: true });
    this.exports = instantiateEngine(module, memory);
    this.memory = memory;
    this.heap = new Float32Array(memory.buffer);
    this.words = new Int32Array(memory.buffer);
    this.f64 = new Float64Array(memory.buffer);
    this.flopsPerRow = writeNow
      ? writeProgram(plan, layout, memory, this.exports)
      : planFlopsPerRow(plan);
    this.pool = new HelperPool(options.spawnHelper, threads, module, memory, layout, this.exports);
  }

  /**
   * Starts the helper threads, once: on the first batch big enough to split (that batch runs on
   * the calling thread; later ones use the helpers once ready), when `ready()` asks, or when a
   * caller expecting large asynchronous calls asks (recalibration's first pass). Not at
   * construction: a helper is a new worker thread with its own isolate, whose start-up a model
   * version's load would otherwise pay for (and, through loadModel, wait for), and which a version
   * serving small batches never needs.
   */
  startHelpers(): void {
    this.pool.start();
  }

  /**
   * Starts the helper threads if they are not yet, and resolves when every one is ready (or has
   * failed), polling every few milliseconds.
   */
  ready(timeoutMs = 30_000): Promise<void> {
    return this.pool.ready(timeoutMs);
  }

  get warmUpRows(): number {
    const rows = Math.min(this.layout.chunkRows, this.layout.ioRows);
    // compute's split rule: a call this size must run on the calling thread alone.
    if (this.threads === 1 || rows < 2 * MR || rows * this.flopsPerRow < this.parallelMinFlops)
      return rows;
    return Math.max(1, 2 * MR - 1, Math.ceil(this.parallelMinFlops / this.flopsPerRow) - 1);
  }

  /** Calls whose rows were split across threads so far. */
  get parallelCalls(): number {
    return this.pool.parallelCalls;
  }

  /**
   * Shares a helper had not started when the calling thread revoked them: an asynchronous call's
   * share then runs on the calling thread; a split call's chunks had all been run by it.
   */
  get revokedShares(): number {
    return this.pool.revokedShares;
  }

  /** Helper threads ready to take rows now. */
  get readyHelpers(): number {
    return this.pool.readyHelpers().length;
  }

  run(input: Float32Array, rows: number, probe?: StatisticsProbe): Float32Array {
    this.drain();
    checkRunArguments(this.plan, input, rows);
    const { inputWidth } = this.plan;
    if (this.plan.steps.length === 0) {
      // Nothing to compute: the output is the input (an input tap still reads it).
      if (probe) this.accumulate(input, rows, probe);
      return input.slice(0, rows * inputWidth);
    }
    const taps = probe ? this.take(probe) : undefined;
    if (!taps) return this.runRows(input, rows);
    this.setTaps(this.plan.steps.length);
    try {
      const out = this.runRows(input, rows);
      taps.pendingRows += rows;
      return out;
    } finally {
      this.setTaps(undefined);
    }
  }

  /** The rows through the program as its header says, ioRows at a time. */
  private runRows(input: Float32Array, rows: number): Float32Array {
    const { inputWidth, outputWidth } = this.plan;
    const { ioRows, input: inAt, output: outAt } = this.layout;
    const inWord = inAt >>> 2;
    const outWord = outAt >>> 2;
    if (rows <= ioRows) {
      const n = rows * inputWidth;
      this.heap.set(input.length === n ? input : input.subarray(0, n), inWord);
      this.compute(rows);
      return this.heap.slice(outWord, outWord + rows * outputWidth);
    }
    const out = new Float32Array(rows * outputWidth);
    for (let r = 0; r < rows; r += ioRows) {
      const n = Math.min(ioRows, rows - r);
      this.heap.set(input.subarray(r * inputWidth, (r + n) * inputWidth), inWord);
      this.compute(n);
      out.set(this.heap.subarray(outWord, outWord + n * outputWidth), r * outputWidth);
    }
    return out;
  }

  accumulate(input: Float32Array, rows: number, probe: StatisticsProbe): void {
    this.drain();
    checkRunArguments(this.plan, input, rows);
    // Its own accumulators, zeroed and collected within the call (what recalibration adds is
    // exactly what one call gathered, whatever ran before).
    this.release();
    const taps = this.begin(probe);
    this.setTaps(taps.steps);
    const width = this.plan.inputWidth;
    const { ioRows, input: inAt } = this.layout;
    for (let r = 0; r < rows; r += ioRows) {
      const n = Math.min(ioRows, rows - r);
      this.heap.set(input.subarray(r * width, (r + n) * width), inAt >>> 2);
      this.compute(n);
    }
    this.setTaps(undefined);
    this.collect(taps, rows);
  }

  /**
   * In blocks through the calling thread's two chunk buffers (each holds at least MR rows of the
   * plan's widest tensor, so at least four rows of outputs), which a synchronous call uses only
   * while it runs and helper threads never touch.
   */
  softmax(logits: Float32Array, rows: number, width: number): Float32Array {
    const out = new Float32Array(rows * width);
    const { bufferBytes, scratch } = this.layout;
    const src = scratch[0]!;
    const dst = src + bufferBytes;
    const block = Math.floor((bufferBytes - ROW_SLACK) / (width * 4));
    if (block < 1 || logits.length < rows * width)
      throw new RangeError(
        `softmax(logits, rows, width): rows·width values (${rows}·${width}, at most ${Math.floor((bufferBytes - ROW_SLACK) / 4)} a row) and logits of that length (${logits.length})`,
      );
    for (let r = 0; r < rows; r += block) {
      const n = Math.min(block, rows - r);
      this.heap.set(logits.subarray(r * width, (r + n) * width), src >>> 2);
      this.exports.softmax(src, dst, n, width);
      out.set(this.heap.subarray(dst >>> 2, (dst >>> 2) + n * width), r * width);
    }
    return out;
  }

  offloads(rows: number): boolean {
    return (
      this.plan.steps.length > 0 &&
      this.threads > 1 &&
      rows * this.flopsPerRow >= this.parallelMinFlops &&
      this.pool.available
    );
  }

  /**
   * run on the helper threads: the rows of each pass (at most ioRows) are copied into the input
   * region and posted whole to the ready helpers (split between them when there are several; the
   * calling thread takes no share), and the event loop waits for them with Atomics.waitAsync, so
   * it keeps serving meanwhile. Same kernels, same rows per call of the engine's run: the result
   * is run's bit for bit. One call is in flight at a time (one I/O region); later calls queue,
   * first in first out, and a synchronous call meanwhile first ends the pass in flight (drain).
   * Without a ready helper (starting, failed, closed) a call runs on the calling thread, and so
   * does a share its helper has not started TAKE_BACK_MS (helper-pool.ts) after the post once
   * this thread is free.
   */
  runAsync(input: Float32Array, rows: number, probe?: StatisticsProbe): Promise<Float32Array> {
    return this.enqueue(input, rows, probe, true) as Promise<Float32Array>;
  }

  accumulateAsync(input: Float32Array, rows: number, probe: StatisticsProbe): Promise<void> {
    return this.enqueue(input, rows, probe, false).then(() => undefined);
  }

  /** A runAsync (`output`) or accumulateAsync call, queued, or answered at once (see offloads). */
  private enqueue(
    input: Float32Array,
    rows: number,
    probe: StatisticsProbe | undefined,
    output: boolean,
  ): Promise<Float32Array | undefined> {
    try {
      checkRunArguments(this.plan, input, rows);
      if (this.plan.steps.length === 0 || (this.calls.length === 0 && !this.offloads(rows))) {
        if (output) return Promise.resolve(this.run(input, rows, probe));
        this.accumulate(input, rows, probe!);
        return Promise.resolve(undefined);
      }
      this.pool.start();
      return new Promise((resolve, reject) => {
        const out = output ? new Float32Array(rows * this.plan.outputWidth) : undefined;
        this.calls.push({ input, rows, probe, out, next: 0, resolve, reject });
        if (!this.pass) this.pump();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The rows of `call` not yet handed to the engine, run here (the caller answers the call). */
  private finishHere(call: AsyncCall): void {
    const { inputWidth, outputWidth } = this.plan;
    const rest = call.input.subarray(call.next * inputWidth, call.rows * inputWidth);
    const rows = call.rows - call.next;
    if (call.out) call.out.set(this.run(rest, rows, call.probe), call.next * outputWidth);
    else this.accumulate(rest, rows, call.probe!);
  }

  /** Passes of async calls that ran on helper threads so far. */
  get offloadedCalls(): number {
    return this.offloadedPasses;
  }

  /** Starts the next pass of the queued calls (none may be in flight). */
  private pump(): void {
    while (!this.pass && this.calls.length > 0) {
      const call = this.calls[0]!;
      try {
        const helpers = this.pool.readyHelpers();
        if (helpers.length === 0) {
          // No helper to take it: the rest of the call runs here, as a synchronous one.
          this.finishHere(call);
          this.calls.shift();
          call.resolve(call.out);
          continue;
        }
        this.post(call, helpers);
      } catch (e) {
        this.calls.shift();
        call.reject(e);
      }
    }
  }

  /** Copies the call's next pass into the input region and posts it to `helpers`. */
  private post(call: AsyncCall, helpers: Helper[]): void {
    const width = this.plan.inputWidth;
    const rows = Math.min(this.layout.ioRows, call.rows - call.next);
    const from = call.next * width;
    this.heap.set(call.input.subarray(from, from + rows * width), this.layout.input >>> 2);
    // The probe's accumulators hold this pass alone (what earlier calls added is collected
    // first), so that a failed helper's part can be cleared exactly (finishPass).
    const taps = call.probe ? this.take(call.probe) : undefined;
    if (taps) {
      this.collectPending(taps);
      // accumulateAsync stops where accumulate does: after the last tapped step.
      this.setTaps(call.out ? this.plan.steps.length : taps.steps);
    }
    const shares = this.pool.post(rows, helpers);
    const pass: AsyncPass = { call, rows, taps, shares, finished: false };
    this.pass = pass;
    // Released when the pass ends (finishPass), its only end.
    holdEventLoop();
    this.offloadedPasses++;
    void this.awaitPass(pass);
  }

  /**
   * Waits, without blocking, until every share of `pass` is finished (or its helper failed),
   * then answers or continues the call and starts the next pass. A synchronous call may have
   * ended the pass meanwhile (drain): then there is nothing left to do here.
   */
  private async awaitPass(pass: AsyncPass): Promise<void> {
    await this.pool.awaitShares(pass);
    if (this.pass !== pass) return;
    this.finishPass(pass);
    this.pump();
  }

  /**
   * The shares of `pass` are done: runs here any a helper did not run (taken back, or its helper
   * failed), copies the pass's outputs and statistics out, answers the call when it has
   * every row.
   */
  private finishPass(pass: AsyncPass): void {
    this.pass = undefined;
    pass.finished = true;
    releaseEventLoop();
    const { call, rows, taps } = pass;
    try {
      const { program, input, output, scratch } = this.layout;
      for (const { helper, r0, r1 } of pass.shares) {
        if (!this.pool.unfinished(helper)) continue;
        if (taps) {
          // A helper that died part-way may have added some rows to its accumulators.
          const at = (helper.scratch + this.layout.accumulators) >>> 3;
          this.f64.fill(0, at, at + taps.bytes / 8);
        }
        this.exports.run(program, input, output, r0, r1, scratch[0]!);
      }
      this.pool.dropFailed();
      const width = this.plan.outputWidth;
      const at = output >>> 2;
      call.out?.set(this.heap.subarray(at, at + rows * width), call.next * width);
      if (taps) {
        taps.pendingRows += rows;
        this.setTaps(undefined);
      }
      call.next += rows;
      if (call.next < call.rows) return;
      this.calls.shift();
      call.resolve(call.out);
    } catch (e) {
      if (taps) this.setTaps(undefined);
      this.calls.shift();
      call.reject(e);
    }
  }

  /**
   * Ends the pass in flight now, for a synchronous call that needs the I/O regions and the
   * helpers: a share a helper has not started is taken back and run here,
   * one it has started is waited for. The queued calls go on after the synchronous call returns.
   */
  private drain(): void {
    const pass = this.pass;
    if (!pass) return;
    this.pool.revoke(pass.shares);
    this.finishPass(pass);
    if (this.calls.length > 0)
      queueMicrotask(() => {
        if (!this.pass) this.pump();
      });
  }

  /** Answers every queued call now, on the calling thread if need be (updateParameters). */
  private settleAll(): void {
    this.drain();
    while (this.calls.length > 0) {
      const call = this.calls.shift()!;
      try {
        this.finishHere(call);
        call.resolve(call.out);
      } catch (e) {
        call.reject(e);
      }
    }
  }

  createProbe(taps: readonly StatisticsTap[]): StatisticsProbe {
    checkTaps(this.plan, taps);
    return new WasmProbe(this, taps, this.layout.tapTable, this.layout.tapCapacity);
  }

  updateParameters(plan: CompiledPlan): void {
    checkSameStructure(this.plan, plan);
    this.settleAll(); // calls made before run with the parameters they were made with
    this.release();
    this.plan = plan;
    this.flopsPerRow = writeProgram(plan, this.layout, this.memory, this.exports);
  }

  prefault(rows: number, maxBytes: number): boolean {
    if (this.prefaultRanges === undefined) {
      // What a call of `rows` rows on the calling thread writes: the first rows of the input and
      // output regions and the calling thread's scratch. The program and parameters were written
      // when the executor was made; the rest of the I/O regions only bigger calls reach, and a
      // helper's scratch its own thread.
      const { input, output, scratch, ioRows, bytes } = this.layout;
      const r = Number.isInteger(rows) ? Math.max(0, Math.min(rows, ioRows)) : 0;
      this.prefaultRanges = [
        [input, input + r * this.plan.inputWidth * 4],
        [output, output + r * this.plan.outputWidth * 4],
        [scratch[0]!, scratch[1] ?? bytes],
      ];
    }
    const ranges = this.prefaultRanges;
    const words = this.words;
    let budget = Math.max(PAGE_BYTES, maxBytes);
    while (ranges.length > 0 && budget > 0) {
      const range = ranges[0]!;
      const end = Math.min(range[1], range[0] + budget);
      // A read would map the shared zero page; an atomic add of zero writes, so the page is
      // backed, and leaves what a helper thread may be writing meanwhile as it is.
      for (let at = range[0] - (range[0] % PAGE_BYTES); at < end; at += PAGE_BYTES) {
        Atomics.add(words, at >>> 2, 0);
      }
      budget -= end - range[0];
      range[0] = end;
      if (end >= range[1]) ranges.shift();
    }
    return ranges.length > 0;
  }

  close(): void {
    this.drain();
    this.pool.close();
  }

  /** Collects what run() gathered for `probe` into its sums (probe.sums). */
  collectPending(probe: WasmProbe): void {
    // A pass in flight adds to the accumulators: it ends first.
    if (this.pass?.taps === probe) this.drain();
    if (this.resident !== probe || probe.pendingRows === 0) return;
    this.collect(probe, probe.pendingRows);
    this.zero(probe);
    probe.pendingRows = 0;
  }

  /** Drops what run() gathered for `probe` (probe.reset). */
  discardPending(probe: WasmProbe): void {
    if (this.pass?.taps === probe) this.drain();
    if (this.resident !== probe) return;
    this.resident = undefined;
    probe.pendingRows = 0;
  }

  /** The probe's table changed (new shifts, after discardPending): written again when next used. */
  tableChanged(probe: WasmProbe): void {
    if (this.written === probe) this.written = undefined;
  }

  /** Collects the resident probe's pending sums and frees the accumulators. */
  private release(): void {
    const resident = this.resident;
    if (!resident) return;
    this.collectPending(resident);
    this.resident = undefined;
  }

  /** Makes `probe` the one run() adds to: its table in memory, the accumulators its own. */
  private take(probe: StatisticsProbe): WasmProbe {
    if (this.resident === probe) return probe as WasmProbe;
    this.release();
    const taken = this.begin(probe);
    this.resident = taken;
    return taken;
  }

  /** Writes the probe's tap table into memory (once) and zeroes every thread's accumulators. */
  private begin(probe: StatisticsProbe): WasmProbe {
    if (!(probe instanceof WasmProbe) || probe.owner !== this)
      throw new RangeError('the probe was created by another executor');
    if (this.written !== probe) {
      this.words.set(probe.table, this.layout.tapTable >>> 2);
      this.written = probe;
    }
    this.zero(probe);
    return probe;
  }

  /**
   * The program header: the written tap table and `limit` steps (a statistics call), or no taps
   * and every step (undefined: a plain call).
   */
  private setTaps(limit: number | undefined): void {
    const header = this.layout.program >>> 2;
    this.words[header + PROGRAM.taps] = limit === undefined ? 0 : this.layout.tapTable;
    this.words[header + PROGRAM.limit] = limit ?? this.plan.steps.length;
  }

  private zero(probe: WasmProbe): void {
    for (const s of this.layout.scratch) {
      const at = (s + this.layout.accumulators) >>> 3;
      this.f64.fill(0, at, at + probe.bytes / 8);
    }
  }

  /** Adds every thread's accumulators into the probe's sums. */
  private collect(probe: WasmProbe, rows: number): void {
    for (const i of probe.first) {
      const tap = probe.taps[i]!;
      const sums = probe.held[i]!;
      const c = tap.channels;
      for (const s of this.layout.scratch) {
        const at = (s + this.layout.accumulators + probe.offsets[i]!) >>> 3;
        for (let k = 0; k < c; k++) {
          sums.sum[k] = sums.sum[k]! + this.f64[at + k]!;
          sums.sumSquares[k] = sums.sumSquares[k]! + this.f64[at + c + k]!;
        }
      }
      const width = tappedWidth(this.plan, tap.step);
      sums.count += rows * (width / c);
    }
  }

  /** Rows 0 … rows−1 of the input region into the output region. */
  private compute(rows: number): void {
    const split = rows >= 2 * MR && rows * this.flopsPerRow >= this.parallelMinFlops;
    if (split && this.pool.split(rows)) return;
    const { program, input, output, scratch } = this.layout;
    this.exports.run(program, input, output, 0, rows, scratch[0]!);
  }
}
