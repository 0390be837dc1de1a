import {
  type ChannelSums,
  resetSums,
  type StatisticsProbe,
  type StatisticsTap,
  sharedSums,
  stepsNeeded,
  tapPosition,
} from '../statistics-probe.js';
import type { TapCapacity } from './memory-layout.js';
import { TAP } from './program-wat.js';
import type { WasmExecutor } from './wasm-executor.js';

/**
 * A probe of the wasm executor: its tap table as written to memory (PROGRAM.taps) and where each
 * tap's accumulators lie in a thread's accumulator area.
 */
export class WasmProbe implements StatisticsProbe {
  /** The JS-side sums; part of what run() gathered may still be in the executor's accumulators. */
  readonly held: ChannelSums[];
  /** Rows run() added to the accumulators since they were last collected into `held`. */
  pendingRows = 0;
  /** Byte offset of each tap's Σx (then Σx²) within a thread's accumulator area. */
  readonly offsets: number[];
  /** Steps a statistics call runs. */
  readonly steps: number;
  /**
   * The table's words (entries, then a record per distinct sums, then each record's shifts as
   * float64 bits, then the clipped records' bounds as float32 bits), to be copied to
   * layout.tapTable.
   */
  readonly table: Int32Array;
  /** The records' shifts within the table (f64, record by record). */
  private readonly shifts: Float64Array;
  /** Accumulator bytes in use. */
  readonly bytes: number;
  /** The taps that own their accumulators (the first of those sharing their sums). */
  readonly first: number[];

  constructor(
    readonly owner: WasmExecutor,
    readonly taps: readonly StatisticsTap[],
    tapTable: number,
    capacity: TapCapacity,
  ) {
    this.held = sharedSums(taps);
    const positions = 2 * (owner.plan.steps.length + 1);
    this.first = [];
    const owners = new Map<ChannelSums, number>();
    taps.forEach((_, i) => {
      if (!owners.has(this.held[i]!)) {
        owners.set(this.held[i]!, i);
        this.first.push(i);
      }
    });
    const channels = this.first.reduce((n, i) => n + taps[i]!.channels, 0);
    if (this.first.length > capacity.records || channels > capacity.channels)
      throw new RangeError(
        `the probe's taps need ${this.first.length} records of ${channels} channels; the executor has room for ${capacity.records} of ${capacity.channels}`,
      );
    const recordWords = TAP.bytes / 4;
    // Even: the shifts start 8-byte aligned (the table is).
    const shiftsAt = positions + recordWords * this.first.length;
    const boundsAt = shiftsAt + 2 * channels;
    const clipped = this.first.reduce((n, i) => n + (taps[i]!.clip ? 2 * taps[i]!.channels : 0), 0);
    this.table = new Int32Array(boundsAt + clipped);
    this.shifts = new Float64Array(this.table.buffer, shiftsAt * 4, channels);
    const bounds = new Float32Array(this.table.buffer);
    const address = (word: number) => tapTable + word * 4;
    /** Per tensor reading, the word of the last record of its chain. */
    const last = new Map<number, number>();
    const offsetOf = new Map<ChannelSums, number>();
    let offset = 0;
    let free = boundsAt;
    this.first.forEach((i, k) => {
      const t = taps[i]!;
      const record = positions + recordWords * k;
      const position = tapPosition(t);
      const previous = last.get(position);
      if (previous === undefined) this.table[position] = address(record);
      else this.table[previous + TAP.next] = address(record);
      last.set(position, record);
      this.table[record + TAP.channels] = t.channels;
      this.table[record + TAP.offset] = offset;
      // Accumulators take 16 bytes a channel, shifts 8: the shifts of this record.
      this.table[record + TAP.shift] = address(shiftsAt + offset / 8);
      if (t.clip) {
        this.table[record + TAP.bounds] = address(free);
        bounds.set(t.clip.lower, free);
        bounds.set(t.clip.upper, free + t.channels);
        free += 2 * t.channels;
      }
      offsetOf.set(this.held[i]!, offset);
      offset += 16 * t.channels;
    });
    this.offsets = taps.map((_, i) => offsetOf.get(this.held[i]!)!);
    this.bytes = offset;
    this.steps = stepsNeeded(taps);
    this.writeShifts();
  }

  /** The held sums' shifts into the table. */
  private writeShifts(): void {
    for (const i of this.first) this.shifts.set(this.held[i]!.shift, this.offsets[i]! / 16);
  }

  /** Every row run so far, the executor's accumulators collected first. */
  get sums(): readonly ChannelSums[] {
    this.owner.collectPending(this);
    return this.held;
  }

  reset(shifts?: readonly (ArrayLike<number> | undefined)[]): void {
    this.owner.discardPending(this);
    resetSums(this.held, shifts);
    if (shifts) {
      this.writeShifts();
      this.owner.tableChanged(this);
    }
  }
}
