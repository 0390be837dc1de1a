/**
 * Runs `work` with SIGINT and SIGTERM first calling `cleanup` (synchronous: the process ends right
 * after), then ending the process by the same signal, as it would have ended without a handler
 * (a shell sees 130 for Ctrl-C). Outside `work` the signals keep their default action.
 */
export async function cleanUpOnSignal<T>(
  cleanup: (signal: NodeJS.Signals) => void,
  work: () => Promise<T>,
): Promise<T> {
  const handler = (signal: NodeJS.Signals) => {
    stop();
    try {
      cleanup(signal);
    } finally {
      // No listener left: the signal's default action ends the process.
      process.kill(process.pid, signal);
    }
  };
  const stop = () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    return await work();
  } finally {
    stop();
  }
}
