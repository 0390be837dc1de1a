/**
 * A long computation cut into bounded slices: a generator that yields between them, so that one
 * body of code serves a synchronous caller (`finish`) and one that must keep an event loop
 * turning (`finishYielding`: a model version loaded by a server that goes on answering meanwhile).
 * The slices are counted in values touched, not in time, so where a computation yields does not
 * depend on the machine.
 */
export type Sliced<T> = Generator<void, T, undefined>;

/**
 * Values one slice touches at most (copied, decoded, checked or folded): 2^18, about 1 MiB of
 * float32, a millisecond or two of a plain loop on one core (bench/load-stall.ts).
 */
export const SLICE_VALUES = 1 << 18;

/** Runs a sliced computation to its end, synchronously. */
export function finish<T>(work: Sliced<T>): T {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
  }
}

/** The host's next turn after pending I/O: setImmediate where there is one (Node), else a timer. */
const nextTurn = (): Promise<void> =>
  new Promise((resolve) => {
    const host = globalThis as { setImmediate?: (callback: () => void) => unknown };
    if (host.setImmediate) host.setImmediate(resolve);
    else setTimeout(resolve, 0);
  });

/**
 * Runs a sliced computation to its end, giving the event loop back between slices (`between`:
 * the host's next turn by default), so that what else is waiting — requests, timers, I/O — runs
 * after at most one slice. A throw inside the computation rejects the promise.
 */
export async function finishYielding<T>(
  work: Sliced<T>,
  between: () => Promise<void> = nextTurn,
): Promise<T> {
  for (;;) {
    const step = work.next();
    if (step.done) return step.value;
    await between();
  }
}

/**
 * Copies `source` into `target` at `offset` in slices of SLICE_VALUES (TypedArray.set, which
 * keeps every value's bits), yielding after each.
 */
export function* copySliced(
  target: Float32Array | Float64Array,
  source: Float32Array | Float64Array,
  offset = 0,
): Sliced<void> {
  for (let a = 0; a < source.length; a += SLICE_VALUES) {
    target.set(source.subarray(a, Math.min(source.length, a + SLICE_VALUES)), offset + a);
    yield;
  }
}
