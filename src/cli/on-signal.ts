/** Calls `handler` on SIGINT and SIGTERM until the function returned is called. */
function onTermination(handler: (signal: NodeJS.Signals) => void): () => void {
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/**
 * Runs `work` with SIGINT and SIGTERM first calling `cleanup` (synchronous: the process ends right
 * after), then ending the process by the same signal, as it would have ended without a handler
 * (a shell sees 130 for Ctrl-C). Outside `work` the signals keep their default action.
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
 * Runs `work` with the first SIGINT or SIGTERM calling `interrupt`, which makes `work` stop on its
 * own terms (a recalibration stops at its next pause, releases its model's lock and publishes
 * nothing). If `work` then fails, `stopped` says so and the process ends by the signal (130 for
 * Ctrl-C), as it would have without a handler, but with nothing left behind; if it completes
 * (the signal came while it was publishing), its result stands. A second signal ends the process
 * at once, whatever `interrupt` was doing.
 */
export async function interruptOnSignal<T>(
  interrupt: (signal: NodeJS.Signals) => Promise<unknown>,
  stopped: (signal: NodeJS.Signals) => void,
  work: () => Promise<T>,
): Promise<T> {
  let received: NodeJS.Signals | undefined;
  let interrupting: Promise<unknown> = Promise.resolve();
  const stop = onTermination((signal) => {
    // No listener left: a second signal takes its default action.
    stop();
    received = signal;
    interrupting = interrupt(signal).catch(() => undefined);
  });
  try {
    return await work();
  } catch (e) {
    if (received === undefined) throw e;
    await interrupting;
    stopped(received);
    process.kill(process.pid, received);
    throw e;
  } finally {
    stop();
  }
}
