/**
 * The signals that end a CLI's run: Ctrl-C, a kill, and SIGHUP, which a terminal closed under a
 * run sends it (it ended train without its message and left the --out directories it had made:
 * h248). The server's SIGHUP is a rescan instead (rescan-on-hangup.ts), and does not come here.
 */
const TERMINATING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Calls `handler` on TERMINATING_SIGNALS until the function returned is called. */
function onTermination(handler: (signal: NodeJS.Signals) => void): () => void {
  for (const signal of TERMINATING_SIGNALS) process.on(signal, handler);
  return () => {
    for (const signal of TERMINATING_SIGNALS) process.off(signal, handler);
  };
}

/**
 * Runs `work` with SIGINT, SIGTERM and SIGHUP first calling `cleanup` (synchronous: the process
 * ends right after), then ending the process by the same signal, as it would have ended without a
 * handler (a shell sees 130 for Ctrl-C). Outside `work` the signals keep their default action.
 */
export async function cleanUpOnSignal<T>(
  cleanup: (signal: NodeJS.Signals) => void,
  work: () => Promise<T>,
): Promise<T> {
  const stop = onTermination((signal) => {
    stop();
    try {
      cleanup(signal);
    } finally {
      // No listener left: the signal's default action ends the process.
      process.kill(process.pid, signal);
    }
  });
  try {
    return await work();
  } finally {
    stop();
  }
}

/**
 * How long after the first signal the same signal again is taken as a copy of it, not as a second
 * one. `npm run` passes a terminal's Ctrl-C on to its child, which the terminal has already sent it
 * (the whole foreground process group gets it): two SIGINTs ~5 ms apart, where the second ended the
 * process before the interrupt released the lock (review of 2026-12-04: 5 runs of 8 under `npm run
 * recalibrate`). So does `npm start` with a shell's `kill %1` (SIGTERM to the job's process group):
 * the server took npm's copy as a second SIGTERM and exited 1 in the middle of its drain (the
 * newcomer of 2026-12-05). A person pressing Ctrl-C again to give up waiting does so later than
 * this.
 */
export const REPEATED_SIGNAL_WINDOW_MS = 1000;

/** The server's log line for a signal signalCopies took as a copy. */
export const SIGNAL_COPY_IGNORED =
  'signal within a second of the one before taken as its copy (npm forwards what its process group got): ignored';

/**
 * A SIGINT/SIGTERM listener for `onSignal` that leaves out the copies (signalCopies), logging each
 * one it leaves out at info.
 */
export function exceptCopies(
  onSignal: (signal: NodeJS.Signals) => void,
  logger: { info: (fields: object, message: string) => void },
): (signal: NodeJS.Signals) => void {
  const isCopy = signalCopies();
  return (signal) => {
    if (isCopy()) logger.info({ signal }, SIGNAL_COPY_IGNORED);
    else onSignal(signal);
  };
}

/**
 * A process's judge of its SIGINT and SIGTERM: called as each arrives, true when it is a copy of
 * the last one counted (within REPEATED_SIGNAL_WINDOW_MS of it), not a signal of its own.
 */
export function signalCopies(now: () => number = () => performance.now()): () => boolean {
  let countedAt: number | undefined;
  return () => {
    const at = now();
    if (countedAt !== undefined && at - countedAt < REPEATED_SIGNAL_WINDOW_MS) return true;
    countedAt = at;
    return false;
  };
}

/**
 * Runs `work` with the first SIGINT, SIGTERM or SIGHUP calling `interrupt`, which makes `work` stop on its
 * own terms (a recalibration stops at its next pause, releases its model's lock and publishes
 * nothing). If `work` then fails, `stopped` says so (it may read what was left behind first) and
 * the process ends by the signal (130 for Ctrl-C), as it would have without a handler, but with
 * nothing left behind; if it completes (the signal came while it was publishing), its result
 * stands. A signal within
 * REPEATED_SIGNAL_WINDOW_MS of the first is its copy and is ignored; a later one ends the process
 * at once, whatever `interrupt` was doing.
 */
export async function interruptOnSignal<T>(
  interrupt: (signal: NodeJS.Signals) => Promise<unknown>,
  stopped: (signal: NodeJS.Signals) => unknown,
  work: () => Promise<T>,
  now: () => number = () => performance.now(),
): Promise<T> {
  let received: NodeJS.Signals | undefined;
  let interrupting: Promise<unknown> = Promise.resolve();
  const isCopy = signalCopies(now);
  const stop = onTermination((signal) => {
    if (isCopy()) return;
    if (received === undefined) {
      received = signal;
      interrupting = interrupt(signal).catch(() => undefined);
      return;
    }
    // No listener left: this signal's default action ends the process.
    stop();
    process.kill(process.pid, signal);
  });
  try {
    return await work();
  } catch (e) {
    if (received === undefined) throw e;
    await interrupting;
    await stopped(received);
    stop();
    process.kill(process.pid, received);
    throw e;
  } finally {
    stop();
  }
}
