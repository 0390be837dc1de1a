import { MR } from '../../nn/wasm/index.js';
import type { EngineExports } from './engine-module.js';
import type { Layout } from './memory-layout.js';
import { CONTROL, DONE, HELPER_STATE } from './program-wat.js';

/** What a helper thread needs to run rows of the plan: see service/engine-runtime.ts. */
export interface HelperInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** Byte addresses: the helper's control block, the program, the I/O regions, its scratch. */
  control: number;
  program: number;
  input: number;
  output: number;
  scratch: number;
  /** The control words a helper that dies writes on its way out (done = −1, state = failed). */
  protocol: { state: number; done: number; failed: number };
}

export interface HelperHandle {
  terminate(): void;
}

/**
 * Starts a thread that instantiates `init.module` on `init.memory` and calls its
 * `serve(control, program, input, output, scratch)` export; writes `protocol`'s failure words if
 * that throws.
 */
export type HelperSpawner = (init: HelperInit) => HelperHandle;

/**
 * A split call's chunks: about CHUNKS_PER_THREAD per thread, and at least MIN_CHUNK_ROWS rows
 * unless that would leave a thread without one. Every chunk streams the weights through the GEMM
 * once: for the wide 784-1024-1024-10 model (7.4 MiB of weights) a quarter of a 256-row batch
 * per chunk instead of a half cost 1.28× the wall time (bench/README.md, h20's round).
 */
const CHUNKS_PER_THREAD = 2;
const MIN_CHUNK_ROWS = 16;
/** How often a wait for a helper re-reads its state word (a helper that died unseen). */
const HELPER_CHECK_MS = 1000;
/**
 * How long a split call's thread spins on a helper's `done` word, once its own chunks are run,
 * before it sleeps in Atomics.wait: the helper is then finishing its last chunk, and a sleep costs
 * a futex wait here and a futex wake in the helper (on a VM, an interrupt to a sleeping vCPU) —
 * more than the wait itself for a 256-row digits call. Thread pools spin before they block for
 * the same reason (onnxruntime's `allow_spinning`, OpenMP's `KMP_BLOCKTIME`). 256-row float32
 * and OIP binary predicts served 1.13x and 1.18x the req/s with it (bench/README.md, issue 11's
 * twenty-third round); 25 to 200 µs read alike. A call whose helper is slower than this sleeps
 * as before, having spent at most this long.
 */
const SPIN_WAIT_MS = 0.05;
/** Atomics.load reads between two looks at the clock while spinning. */
const SPIN_READS = 256;

/**
 * An asynchronous call's share a helper has not started after this long is taken back by the
 * calling thread when it is free: a woken helper starts within tens of µs when it has a core.
 */
const TAKE_BACK_MS = 1;

/** The threads an executor runs on: helpers need a spawner. */
export const executorThreads = (threads: number, spawnHelper: HelperSpawner | undefined): number =>
  spawnHelper ? Math.max(1, Math.floor(threads)) : 1;

export interface Helper {
  control: number;
  /** The helper's scratch (its tap accumulators live there). */
  scratch: number;
  handle: HelperHandle;
}

/** Rows r0 … r1−1 of the I/O regions, posted whole to one helper (an asynchronous call's pass). */
export interface Share {
  helper: Helper;
  r0: number;
  r1: number;
}

/**
 * The helper threads of one WasmExecutor and the protocol of their control blocks: the threads
 * run the same program on the same shared memory as the calling thread (program-wat.ts's `serve`
 * loop), each told through its control block which rows to run. A synchronous call's rows are
 * claimed in chunks from one cursor by the calling thread and the helpers alike (split); an
 * asynchronous call's pass is posted in shares (post) and waited for without blocking
 * (awaitShares); a share a helper has not started is revoked and run by the calling thread.
 */
export class HelperPool {
  private helpers: Helper[] = [];
  /** Set until the helpers are started (start). */
  private spawnHelper: HelperSpawner | undefined;
  private readonly words: Int32Array;
  private splitCalls = 0;
  private takenBack = 0;

  constructor(
    spawnHelper: HelperSpawner | undefined,
    private readonly threads: number,
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    private readonly layout: Layout,
    private readonly exports: EngineExports,
  ) {
    this.spawnHelper = spawnHelper;
    this.words = new Int32Array(memory.buffer);
  }

  /**
   * Starts the helper threads, once (WasmExecutor.startHelpers says when, and why not at
   * construction).
   */
  start(): void {
    const spawn = this.spawnHelper;
    if (!spawn) return;
    this.spawnHelper = undefined;
    const layout = this.layout;
    for (let h = 0; h < this.threads - 1; h++) {
      const control = layout.controls[h]!;
      const handle = spawn({
        module: this.module,
        memory: this.memory,
        control,
        program: layout.program,
        input: layout.input,
        output: layout.output,
        scratch: layout.scratch[h + 1]!,
        protocol: { state: CONTROL.state, done: CONTROL.done, failed: HELPER_STATE.failed },
      });
      this.helpers.push({ control, scratch: layout.scratch[h + 1]!, handle });
    }
  }

  /**
   * Starts the helper threads if they are not yet, and resolves when every one is ready (or has
   * failed), polling every few milliseconds.
   */
  async ready(timeoutMs: number): Promise<void> {
    this.start();
    const started = Date.now();
    while (
      this.helpers.some((h) => this.word(h.control, CONTROL.state) === HELPER_STATE.starting) &&
      Date.now() - started < timeoutMs
    ) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Whether there are helpers, started or yet to start (not closed, not all failed). */
  get available(): boolean {
    return this.spawnHelper !== undefined || this.helpers.length > 0;
  }

  /** Helper threads ready to take rows now. */
  readyHelpers(): Helper[] {
    return this.helpers.filter((h) => this.word(h.control, CONTROL.state) === HELPER_STATE.ready);
  }

  /** Calls whose rows were split across threads so far. */
  get parallelCalls(): number {
    return this.splitCalls;
  }

  /** Shares revoked before their helper started them (WasmExecutor.revokedShares). */
  get revokedShares(): number {
    return this.takenBack;
  }

  /** Forgets the helpers whose state word says failed. */
  dropFailed(): void {
    this.helpers = this.helpers.filter(
      (h) => this.word(h.control, CONTROL.state) !== HELPER_STATE.failed,
    );
  }

  /**
   * Rows 0 … rows−1 of the input region into the output region, split between the calling
   * thread and the ready helpers (started now if they are not yet); false, with nothing run,
   * when no helper is ready.
   */
  split(rows: number): boolean {
    this.start();
    const helpers = this.helpers.length > 0 ? this.readyHelpers() : [];
    if (helpers.length === 0) return false;
    const { program, input, output, scratch } = this.layout;
    const x = this.exports;
    this.splitCalls++;
    // Every thread claims chunks of rows from one cursor until none is left (dynamic scheduling,
    // as OpenMP's and onnxruntime's thread pools do): a helper that wakes late, or loses its core
    // for a while, takes fewer chunks, and this thread waits at most for the chunk a helper is
    // running instead of for its whole share. Chunks are multiples of the GEMM's row tile, so
    // every row is computed as in one call (bit-identical), and at least MIN_CHUNK_ROWS rows, so
    // that a model whose weights do not fit in cache reads them once per chunk of real work.
    const threads = helpers.length + 1;
    const evenShare = Math.ceil(rows / threads / MR) * MR;
    const chunk = Math.min(
      evenShare,
      Math.max(MIN_CHUNK_ROWS, Math.ceil(rows / (CHUNKS_PER_THREAD * threads) / MR) * MR),
    );
    const w = this.words;
    const cursor = (helpers[0]!.control >>> 2) + CONTROL.cursor;
    Atomics.store(w, cursor, 0);
    for (const h of helpers) {
      const c = h.control >>> 2;
      Atomics.store(w, c + CONTROL.r1, rows);
      Atomics.store(w, c + CONTROL.chunk, chunk);
      Atomics.store(w, c + CONTROL.cursorAt, cursor << 2);
      Atomics.store(w, c + CONTROL.current, -1);
      Atomics.store(w, c + CONTROL.done, DONE.posted);
      Atomics.add(w, c + CONTROL.seq, 1);
      Atomics.notify(w, c + CONTROL.seq);
    }
    for (;;) {
      const r0 = Atomics.add(w, cursor, chunk);
      if (r0 >= rows) break;
      x.run(program, input, output, r0, Math.min(rows, r0 + chunk), scratch[0]!);
    }
    for (const h of helpers) {
      const c = h.control >>> 2;
      // A helper that has not claimed its share yet is told not to (revoked): no rows are left.
      let state = Atomics.compareExchange(w, c + CONTROL.done, DONE.posted, DONE.revoked);
      if (state === DONE.claimed) state = spinWhile(w, c + CONTROL.done, DONE.claimed);
      while (state === DONE.claimed) {
        Atomics.wait(w, c + CONTROL.done, DONE.claimed, HELPER_CHECK_MS);
        state = Atomics.load(w, c + CONTROL.done);
        // Re-checked every HELPER_CHECK_MS; a helper whose state word says failed is not waited
        // for (its thread writes the state word first, then done = −1).
        if (this.word(h.control, CONTROL.state) === HELPER_STATE.failed) state = DONE.failed;
      }
      if (state === DONE.posted) this.takenBack++;
      const current = Atomics.load(w, c + CONTROL.current);
      if (state === DONE.failed && current >= 0) {
        // The helper died in the chunk it was running (its thread wrote the failure words; the
        // chunks it finished are in the output): that chunk runs again here. Its statistics
        // taps may hold part of that chunk, which then counts twice, as a failed share did.
        x.run(program, input, output, current, Math.min(rows, current + chunk), scratch[0]!);
      }
    }
    if (helpers.some((h) => this.word(h.control, CONTROL.state) === HELPER_STATE.failed))
      this.dropFailed();
    return true;
  }

  /**
   * Posts rows 0 … rows−1 of the I/O regions to `helpers`, split between them in shares of whole
   * row tiles; returns the shares (a helper left without rows gets none).
   */
  post(rows: number, helpers: Helper[]): Share[] {
    const share = Math.ceil(rows / helpers.length / MR) * MR;
    const w = this.words;
    const shares = helpers
      .map((helper, i) => ({
        helper,
        r0: Math.min(rows, share * i),
        r1: Math.min(rows, share * (i + 1)),
      }))
      .filter((s) => s.r1 > s.r0);
    for (const { helper, r0, r1 } of shares) {
      const c = helper.control >>> 2;
      Atomics.store(w, c + CONTROL.r0, r0);
      Atomics.store(w, c + CONTROL.r1, r1);
      Atomics.store(w, c + CONTROL.chunk, 0);
      Atomics.store(w, c + CONTROL.done, DONE.posted);
      Atomics.add(w, c + CONTROL.seq, 1);
      Atomics.notify(w, c + CONTROL.seq);
    }
    return shares;
  }

  /**
   * Waits, without blocking, until every share of `pass` is finished, taken back, or its helper
   * failed; returns early once `pass.finished` (a synchronous call ended the pass meanwhile:
   * revoke).
   */
  async awaitShares(pass: {
    readonly shares: readonly Share[];
    readonly finished: boolean;
  }): Promise<void> {
    const w = this.words;
    for (const { helper } of pass.shares) {
      const done = (helper.control >>> 2) + CONTROL.done;
      for (;;) {
        const state = Atomics.load(w, done);
        if (state !== DONE.posted && state !== DONE.claimed) break;
        // A helper that died before it could claim the share writes its failure words, which
        // change `done`; the timeout re-checks its state in case it died just before the post.
        if (this.word(helper.control, CONTROL.state) === HELPER_STATE.failed) break;
        const posted = state === DONE.posted;
        const waited = Atomics.waitAsync(w, done, state, posted ? TAKE_BACK_MS : HELPER_CHECK_MS);
        const outcome = waited.async ? await waited.value : waited.value;
        if (pass.finished) return;
        // Not started yet, and this thread has nothing else to do (the timeout runs only when the
        // event loop is free): the helper is waiting for a core; the share is taken back and run
        // by the calling thread (unfinished).
        if (
          posted &&
          outcome === 'timed-out' &&
          Atomics.compareExchange(w, done, DONE.posted, DONE.revoked) === DONE.posted
        ) {
          this.takenBack++;
          break;
        }
      }
    }
  }

  /**
   * Whether `helper`'s share is to be run by the calling thread once the pass is over (taken
   * back, or its helper failed); a share posted or claimed by a helper that failed without
   * touching `done` is marked revoked.
   */
  unfinished(helper: Helper): boolean {
    const w = this.words;
    const state = Atomics.load(w, (helper.control >>> 2) + CONTROL.done);
    if (state === DONE.finished) return false;
    if (state === DONE.posted || state === DONE.claimed) {
      // Its helper failed (state word) without touching `done`: mark the share revoked.
      Atomics.store(w, (helper.control >>> 2) + CONTROL.done, DONE.revoked);
    }
    return true;
  }

  /**
   * Ends the shares of a pass now, for a synchronous call that needs the I/O regions and the
   * helpers: a share a helper has not started is revoked (run by the caller: unfinished), one it
   * has started is waited for.
   */
  revoke(shares: readonly Share[]): void {
    const w = this.words;
    for (const { helper } of shares) {
      const done = (helper.control >>> 2) + CONTROL.done;
      // The helper wakes one waiter when it finishes: move awaitShares's wait out of the way (it
      // finds the pass ended and returns), so that the waiter is this thread.
      Atomics.notify(w, done);
      let state = Atomics.compareExchange(w, done, DONE.posted, DONE.revoked);
      while (state === DONE.claimed) {
        Atomics.wait(w, done, DONE.claimed, HELPER_CHECK_MS);
        state = Atomics.load(w, done);
        if (this.word(helper.control, CONTROL.state) === HELPER_STATE.failed) break;
      }
      if (state === DONE.posted) this.takenBack++;
    }
  }

  /** Stops and terminates the helpers; none is started after (the caller has ended its pass). */
  close(): void {
    this.spawnHelper = undefined;
    for (const h of this.helpers) {
      Atomics.store(this.words, (h.control >>> 2) + CONTROL.state, HELPER_STATE.stopping);
      Atomics.add(this.words, (h.control >>> 2) + CONTROL.seq, 1);
      Atomics.notify(this.words, (h.control >>> 2) + CONTROL.seq);
      h.handle.terminate();
    }
    this.helpers = [];
  }

  private word(control: number, index: number): number {
    return Atomics.load(this.words, (control >>> 2) + index);
  }
}

/**
 * Reads w[index] until it differs from `value` or SPIN_WAIT_MS have passed; returns the last
 * value read (`value` when the time ran out).
 */
function spinWhile(w: Int32Array, index: number, value: number): number {
  const until = performance.now() + SPIN_WAIT_MS;
  for (;;) {
    for (let i = 0; i < SPIN_READS; i++) {
      const read = Atomics.load(w, index);
      if (read !== value) return read;
    }
    if (performance.now() >= until) return value;
  }
}
