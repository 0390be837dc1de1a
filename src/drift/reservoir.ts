import type { Rng } from '../nn/index.js';
import type { UniformSample } from './sample-union.js';

/**
 * A uniform sample of at most `capacity` rows of everything offered since the last reset
 * (Vitter's Algorithm R, "Random sampling with a reservoir", 1985): row k (0-based) of the stream
 * replaces a random held row with probability capacity/(k + 1). Memory is fixed at
 * capacity·width float32 values, allocated once.
 */
export class Reservoir {
  readonly capacity: number;
  private readonly data: Float32Array;
  /** Rows offered since the last reset. */
  seen = 0;

  constructor(
    readonly width: number,
    capacity: number,
    private readonly rng: Rng,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1 || !Number.isInteger(width) || width < 1)
      throw new RangeError('Reservoir: width and capacity must be whole numbers ≥ 1');
    this.capacity = capacity;
    this.data = new Float32Array(capacity * width);
  }

  /** Rows held: min(seen, capacity). */
  get size(): number {
    return Math.min(this.seen, this.capacity);
  }

  /** Offers `rows` rows of `input` ([rows, width], row-major). */
  offer(input: Float32Array, rows: number): void {
    const w = this.width;
    for (let r = 0; r < rows; r++) {
      let slot: number;
      if (this.seen < this.capacity) slot = this.seen;
      else {
        const k = this.rng.int(this.seen + 1);
        slot = k < this.capacity ? k : -1;
      }
      if (slot >= 0) this.data.set(input.subarray(r * w, (r + 1) * w), slot * w);
      this.seen++;
    }
  }

  /**
   * Offers at most `max` of `rows` rows, a uniform choice of them (Knuth's selection sampling,
   * Algorithm S: row r of the call is taken with probability needed / (rows − r)); the rows not
   * chosen are not offered and do not count in `seen`.
   */
  offerAtMost(input: Float32Array, rows: number, max: number): void {
    if (rows <= max) {
      this.offer(input, rows);
      return;
    }
    const w = this.width;
    let needed = max;
    for (let r = 0; r < rows && needed > 0; r++) {
      if (this.rng.int(rows - r) < needed) {
        this.offer(input.subarray(r * w, (r + 1) * w), 1);
        needed--;
      }
    }
  }

  /** A copy of the held rows ([size, width]). */
  rows(): Float32Array {
    return this.data.slice(0, this.size * this.width);
  }

  /** The held rows (a copy) with the count they stand for: the input of uniformUnion. */
  sample(): UniformSample {
    return { rows: this.rows(), size: this.size, seen: this.seen };
  }

  reset(): void {
    this.seen = 0;
  }
}
