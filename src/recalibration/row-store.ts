/**
 * The received rows (raw, as uploaded), kept because in `exact` and `prior` mode the input of
 * BatchNorm k depends on the new statistics of BatchNorm k − 1, so every row is needed again once
 * per BatchNorm. Appends copy; chunks() reads them back in order in blocks of at most `blockRows`
 * rows (a block may be reused once the iteration moves on).
 */
export interface RowStore {
  readonly rows: number;
  /** Copies whole rows in. */
  append(rows: Float32Array): void | Promise<void>;
  /** The stored rows, in the order received, in blocks of at most `blockRows` rows. */
  chunks(): AsyncIterable<{ data: Float32Array; rows: number }>;
  /** Releases what the store holds (files, memory); idempotent. */
  close(): void | Promise<void>;
}

/**
 * Where a MemoryRowStore gets its blocks and leaves them when it closes: a server keeps the
 * blocks of one recalibration for the next (RowBlockPool in src/service/), because writing into
 * memory already touched costs a fraction of faulting in fresh pages (bench/README.md,
 * "Recalibration", fourth round).
 */
export interface RowBlockSource {
  /**
   * A held array of `length` values, its contents unspecified (every value is written before it
   * is read), or undefined when none is held: the store then grows a block of its own, so that a
   * few rows never cost a whole block of fresh memory.
   */
  take(length: number): Float32Array | undefined;
  /** Arrays the store no longer uses; their contents are garbage to the next taker. */
  give(blocks: readonly Float32Array[]): void;
}

/**
 * Rows in memory: copied once into blocks of at most `blockRows` rows (small pushes are
 * coalesced, big ones split), never into one giant array; the open block grows by doubling so
 * that a few rows never allocate a whole block — or, when a block source holds one, is a whole
 * block from it; close() gives the whole blocks back.
 */
export class MemoryRowStore implements RowStore {
  private blocks: Float32Array[] = [];
  private open: Float32Array = new Float32Array(0);
  private openRows = 0;
  private stored = 0;

  constructor(
    readonly width: number,
    readonly blockRows: number,
    private readonly source?: RowBlockSource,
    /**
     * With a source: a block the source does not hold is allocated whole at once (each page
     * touched once, no growing copies) rather than grown by doubling. For a caller whose memory
     * budget holds whole blocks; otherwise a few rows would cost a whole block.
     */
    private readonly wholeBlocks = false,
  ) {}

  get rows(): number {
    return this.stored;
  }

  /** Copies whole rows in. */
  append(rows: Float32Array): void {
    const w = this.width;
    let offset = 0;
    const total = rows.length / w;
    while (offset < total) {
      const room = this.blockRows - this.openRows;
      const take = Math.min(room, total - offset);
      this.reserve(this.openRows + take);
      this.open.set(rows.subarray(offset * w, (offset + take) * w), this.openRows * w);
      this.openRows += take;
      offset += take;
      this.stored += take;
      if (this.openRows === this.blockRows) {
        this.blocks.push(this.open);
        this.open = new Float32Array(0);
        this.openRows = 0;
      }
    }
  }

  /** The stored rows as blocks of at most `blockRows` rows, in the order received. */
  async *chunks(): AsyncGenerator<{ data: Float32Array; rows: number }> {
    for (const data of this.blocks) yield { data, rows: this.blockRows };
    if (this.openRows > 0)
      yield { data: this.open.subarray(0, this.openRows * this.width), rows: this.openRows };
  }

  close(): void {
    if (this.source) {
      const whole = this.blockRows * this.width;
      this.source.give(this.open.length === whole ? [...this.blocks, this.open] : this.blocks);
    }
    this.blocks = [];
    this.open = new Float32Array(0);
    this.openRows = 0;
  }

  private reserve(rows: number): void {
    const capacity = this.open.length / this.width;
    if (rows <= capacity) return;
    if (this.source && capacity === 0) {
      const pooled = this.source.take(this.blockRows * this.width);
      if (pooled || this.wholeBlocks) {
        this.open = pooled ?? new Float32Array(this.blockRows * this.width);
        return;
      }
    }
    const grown = Math.min(this.blockRows, Math.max(rows, 2 * capacity, 16));
    const next = new Float32Array(grown * this.width);
    next.set(this.open.subarray(0, this.openRows * this.width));
    this.open = next;
  }
}

/**
 * Rows the caller holds for the whole recalibration (recalibrate(), whose data stays untouched
 * until it returns): appends keep views of them, nothing is copied. Touching fresh memory is
 * what a copy costs here — 51 MiB of new blocks took 0.12–0.17 s of user and 0.07–0.1 s of
 * system CPU on the 2-core machine (bench/fresh-memory.ts), about as much as the statistics of
 * those 200,000 rows themselves.
 */
export class ViewRowStore implements RowStore {
  private views: Float32Array[] = [];
  private stored = 0;

  constructor(readonly width: number) {}

  get rows(): number {
    return this.stored;
  }

  /** Keeps a view: `rows` must not change until the store is closed. */
  append(rows: Float32Array): void {
    this.views.push(rows);
    this.stored += rows.length / this.width;
  }

  async *chunks(): AsyncGenerator<{ data: Float32Array; rows: number }> {
    for (const data of this.views) yield { data, rows: data.length / this.width };
  }

  close(): void {
    this.views = [];
  }
}
