import { ChannelMoments } from '../recalibration/channel-moments.js';
import type { LiveMoments } from './layer-drift.js';

/** One time window: per layer, the moments of the values seen while it was current. */
export interface MomentWindow {
  /** Start of the window (ms since the epoch, a multiple of windowMs). */
  readonly start: number;
  readonly layers: ChannelMoments[];
  /** Input rows whose statistics landed in this window. */
  rows: number;
}

/**
 * Per-layer moments of recent traffic over a ring of `windows` time windows of `windowMs` each:
 * a window collects while it is current and is dropped once it is `windows` windows old, so the
 * statistics describe the last windows·windowMs of traffic. Windows merge with Chan's pairwise
 * update (recalibration's ChannelMoments), so the merged moments do not depend on how the traffic
 * was batched.
 */
export class WindowedMoments {
  private ring: MomentWindow[] = [];
  private scratch: ChannelMoments[] | undefined;

  constructor(
    readonly channels: readonly number[],
    readonly windowMs: number,
    readonly windows: number,
  ) {
    if (!(windowMs > 0) || !Number.isInteger(windows) || windows < 1)
      throw new RangeError('WindowedMoments: windowMs must be > 0 and windows a whole number ≥ 1');
  }

  /** The window current at `now`, made (and the expired ones dropped) when time moved on. */
  current(now: number): MomentWindow {
    const start = Math.floor(now / this.windowMs) * this.windowMs;
    const last = this.ring[this.ring.length - 1];
    if (last && last.start >= start) return last;
    this.expire(now);
    const window: MomentWindow = {
      start,
      layers: this.channels.map((c) => new ChannelMoments(c)),
      rows: 0,
    };
    this.ring.push(window);
    return window;
  }

  /**
   * Adds one batch's moments of every layer (moments[i] for layer i) and its row count; the
   * arrays are read, not kept (callers reuse theirs).
   */
  add(now: number, rows: number, moments: readonly LiveMoments[]): void {
    const window = this.current(now);
    for (let i = 0; i < moments.length; i++) {
      const m = moments[i]!;
      if (m.count > 0) window.layers[i]!.add(m);
    }
    window.rows += rows;
  }

  /**
   * Adds a window's moments (moments[i] for layer i) seen elsewhere — another process's share of
   * the traffic — into the window that starts at `start` (made if needed, in order); a window
   * already outside the horizon at `now` is dropped.
   */
  addWindow(now: number, start: number, rows: number, moments: readonly LiveMoments[]): void {
    this.expire(now);
    if (start < this.oldestStart(now)) return;
    let at = this.ring.findIndex((w) => w.start >= start);
    if (at < 0) at = this.ring.length;
    let window = this.ring[at];
    if (window?.start !== start) {
      window = { start, layers: this.channels.map((c) => new ChannelMoments(c)), rows: 0 };
      this.ring.splice(at, 0, window);
    }
    for (let i = 0; i < moments.length; i++) {
      const m = moments[i]!;
      if (m.count > 0) window.layers[i]!.add(m);
    }
    window.rows += rows;
  }

  /** The windows still inside the horizon at `now`, oldest first. */
  windowsAt(now: number): readonly MomentWindow[] {
    this.expire(now);
    return this.ring;
  }

  /** Per layer, the moments of every window inside the horizon merged; and their rows. */
  merged(now: number): { rows: number; layers: LiveMoments[] } {
    const layers = this.channels.map((c) => new ChannelMoments(c));
    return { rows: this.mergeInto(now, layers), layers };
  }

  /**
   * The same in arrays this object keeps and reuses: valid until its next call (for a caller that
   * looks often, on the request path, and keeps nothing).
   */
  mergedInPlace(now: number): { rows: number; layers: LiveMoments[] } {
    this.scratch ??= this.channels.map((c) => new ChannelMoments(c));
    return { rows: this.mergeInto(now, this.scratch), layers: this.scratch };
  }

  private mergeInto(now: number, layers: readonly ChannelMoments[]): number {
    let rows = 0;
    for (const l of layers) l.reset();
    for (const w of this.windowsAt(now)) {
      rows += w.rows;
      for (let i = 0; i < w.layers.length; i++) {
        const m = w.layers[i]!;
        if (m.count > 0) layers[i]!.add(m);
      }
    }
    return rows;
  }

  reset(): void {
    this.ring = [];
  }

  /** Start of the oldest window inside the horizon at `now`. */
  private oldestStart(now: number): number {
    return Math.floor(now / this.windowMs) * this.windowMs - (this.windows - 1) * this.windowMs;
  }

  private expire(now: number): void {
    const oldest = this.oldestStart(now);
    while (this.ring.length > 0 && this.ring[0]!.start < oldest) this.ring.shift();
  }
}
