/** One request counted against a key's fixed window. */
export interface RateLimitHit {
  /** Requests of this key in its current window, this one included. */
  count: number;
  /** Milliseconds until the window ends and the count starts again from zero. */
  resetInMs: number;
}

/**
 * Counts requests per key in fixed windows. One per server: in a single process the app's own
 * FixedWindowCounter; with WORKERS > 1 every worker asks the primary's one over cluster IPC
 * (cli/cluster-rate-limit.ts), so the limit holds for the server, not for each process.
 */
export interface RateLimitCounter {
  hit(key: string, windowMs: number): RateLimitHit | Promise<RateLimitHit>;
}

/**
 * Fixed windows per key, in memory. A key's window starts at its first request and lasts
 * `windowMs`; `resetInMs` is the real time left in it. At most `maxKeys` keys are kept (clients
 * rotating addresses cannot grow it without bound): beyond that the windows that started first are
 * forgotten, which only ever lets a forgotten client start afresh.
 */
export class FixedWindowCounter implements RateLimitCounter {
  private readonly windows = new Map<string, { count: number; startMs: number }>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: { maxKeys?: number; now?: () => number } = {}) {
    this.maxKeys = options.maxKeys ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  hit(key: string, windowMs: number): RateLimitHit {
    const now = this.now();
    let window = this.windows.get(key);
    if (window === undefined || now - window.startMs >= windowMs) {
      // Re-inserted, so the map's order stays the order in which windows started.
      this.windows.delete(key);
      window = { count: 0, startMs: now };
      this.windows.set(key, window);
      for (const oldest of this.windows.keys()) {
        if (this.windows.size <= this.maxKeys) break;
        this.windows.delete(oldest);
      }
    }
    window.count++;
    return { count: window.count, resetInMs: window.startMs + windowMs - now };
  }
}
