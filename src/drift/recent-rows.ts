/**
 * The last `capacity` rows seen, in a ring (fixed memory: capacity·width float32 values). The
 * dashboard's before/after-BatchNorm pictures are drawn from them.
 */
export class RecentRows {
  private readonly data: Float32Array;
  private next = 0;
  private held = 0;

  constructor(
    readonly width: number,
    readonly capacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1 || !Number.isInteger(width) || width < 1)
      throw new RangeError('RecentRows: width and capacity must be whole numbers ≥ 1');
    this.data = new Float32Array(capacity * width);
  }

  get size(): number {
    return this.held;
  }

  /** Adds the last min(rows, capacity) rows of `input` ([rows, width]). */
  push(input: Float32Array, rows: number): void {
    const w = this.width;
    let from = Math.max(0, rows - this.capacity);
    // At most two copies: up to the end of the ring, then from its start.
    while (from < rows) {
      const n = Math.min(rows - from, this.capacity - this.next);
      this.data.set(input.subarray(from * w, (from + n) * w), this.next * w);
      from += n;
      this.next = (this.next + n) % this.capacity;
      this.held = Math.min(this.capacity, this.held + n);
    }
  }

  /** A copy of the held rows, oldest first. */
  rows(): Float32Array {
    const w = this.width;
    const out = new Float32Array(this.held * w);
    const start = this.held < this.capacity ? 0 : this.next;
    for (let i = 0; i < this.held; i++) {
      const slot = (start + i) % this.capacity;
      out.set(this.data.subarray(slot * w, (slot + 1) * w), i * w);
    }
    return out;
  }

  reset(): void {
    this.next = 0;
    this.held = 0;
  }
}
