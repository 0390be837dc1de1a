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

  /** Adds one batch's moments of every layer (moments[i] for layer i) and its row count. */
  add(now: number, rows: number, moments: readonly LiveMoments[]): void {
    const window = this.current(now);
    moments.forEach((m, i) => {
      if (m.count === 0) return;
      window.layers[i]!.add({
        count: m.count,
        mean: Float64Array.from(m.mean),
        m2: Float64Array.from(m.m2 as ArrayLike<number>),
      });
    });
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
    let rows = 0;
    for (const w of this.windowsAt(now)) {
      rows += w.rows;
      w.layers.forEach((m, i) => {
        if (m.count === 0) return;
        layers[i]!.add({ count: m.count, mean: m.mean, m2: m.m2 });
      });
    }
    return { rows, layers };
  }

  reset(): void {
    this.ring = [];
  }

  private expire(now: number): void {
    const oldest =
      Math.floor(now / this.windowMs) * this.windowMs - (this.windows - 1) * this.windowMs;
    while (this.ring.length > 0 && this.ring[0]!.start < oldest) this.ring.shift();
  }
}
