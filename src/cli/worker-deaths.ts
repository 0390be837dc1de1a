/** Deaths a minute after which the primary stops replacing workers (a crash loop). */
export const CRASH_LOOP_DEATHS = 10;
export const CRASH_LOOP_WINDOW_MS = 60_000;

/**
 * What a worker's death means to the cluster primary:
 * - `start-failed`: no worker has ever listened, so this one could not start (a taken port, a
 *   missing repository) and another would fail alike: the server stops, exit 1.
 * - `crash-loop`: more than CRASH_LOOP_DEATHS deaths within CRASH_LOOP_WINDOW_MS: the server stops.
 * - `replace`: the server has served; a worker that dies (a crash, an OOM kill, or a replacement
 *   that fails as it starts) is replaced, as one outage of one worker should not stop the others.
 */
export type WorkerDeathVerdict = 'start-failed' | 'crash-loop' | 'replace';

export class WorkerDeaths {
  private everReady = false;
  private readonly recentMs: number[] = [];

  /** A worker listens (`normserve:ready`). */
  ready(): void {
    this.everReady = true;
  }

  /** Whether a worker has ever listened: before that, a start-up failure stops the server. */
  get served(): boolean {
    return this.everReady;
  }

  /** A worker died (not during shutdown) at `nowMs`. */
  died(nowMs: number): WorkerDeathVerdict {
    if (!this.everReady) return 'start-failed';
    this.recentMs.push(nowMs);
    while (this.recentMs.length > 0 && nowMs - this.recentMs[0]! > CRASH_LOOP_WINDOW_MS)
      this.recentMs.shift();
    return this.recentMs.length > CRASH_LOOP_DEATHS ? 'crash-loop' : 'replace';
  }
}
