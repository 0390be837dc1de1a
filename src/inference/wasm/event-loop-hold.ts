/**
 * Keeps the event loop alive while an asynchronous pass is on helper threads. Neither what the
 * calling thread waits with (Atomics.waitAsync) nor the helpers (unref'd: an idle helper never
 * keeps a process alive) holds Node's event loop open, so a script whose only pending work was
 * `await executor.runAsync(…)` exited 13 (unsettled top-level await) with the rows not computed.
 * One process-wide timer that never does anything is ref'd while at least one pass is in flight
 * and unref'd when none is: a counter per pass, the timer touched only on 0 → 1 and 1 → 0 (a
 * Timeout's ref and unref only toggle the loop's count of ref'd timers), cheap enough for the
 * server's request path.
 */
let held = 0;
let timer: ReturnType<typeof setInterval> | undefined;

/** The longest delay a timer takes (2^31 − 1 ms); it only has to exist. */
const NEVER_MS = 2 ** 31 - 1;

/** A pass was posted: the process stays alive until it is released. */
export function holdEventLoop(): void {
  if (held++ > 0) return;
  timer ??= setInterval(() => {}, NEVER_MS);
  timer.ref?.();
}

/** A pass held by holdEventLoop has ended. */
export function releaseEventLoop(): void {
  if (held === 0 || --held > 0) return;
  timer?.unref?.();
}

/** Passes in flight holding the event loop (tests). */
export const eventLoopHolds = (): number => held;
