import pino from 'pino';

/** What pino writes to: a line at a time, and everything pending at once when asked. */
export interface LogDestination {
  write(line: string): void;
  flushSync(): void;
}

/**
 * The server's log destination: the lines one turn of the event loop writes (under load, the
 * "request" lines of every response that turn sent) leave together in one write(2) at the end of
 * that turn (setImmediate), on the main thread. pino's asynchronous destination made one
 * thread-pool write per line on a busy server — a pool thread woken, the write, a completion back
 * on the event loop — which cost more CPU than the line itself (bench/README.md, "Third round").
 * No line waits longer than the turn that wrote it, and what is pending when the process exits
 * (process.exit included) is written by the exit handler.
 */
export function turnLogDestination(fd = 1): LogDestination {
  // sonic-boom's synchronous writes retry EAGAIN on a non-blocking pipe and finish partial
  // writes. Its own buffering (minLength) is not used: its flushSync also fsyncs a file.
  const sonic = pino.destination({ dest: fd, sync: true });
  let pending = '';
  const flushSync = () => {
    if (pending === '') return;
    const lines = pending;
    pending = '';
    sonic.write(lines);
  };
  process.on('exit', flushSync);
  return {
    write(line) {
      if (pending === '') setImmediate(flushSync);
      pending += line;
    },
    flushSync,
  };
}
