import {
  type ChannelSums,
  type StatisticsProbe,
  type StatisticsTap,
  sharedSums,
  stepsNeeded,
  tapPosition,
} from '../statistics-probe.js';
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
  /** The table's words (entries, then records), to be copied to layout.tapTable. */
  readonly table: Int32Array;
  /** Accumulator bytes in use. */
  readonly bytes: number;
  /** The taps that own their accumulators (the first of those sharing a tensor). */
  readonly first: number[];

  constructor(
    readonly owner: WasmExecutor,
    readonly taps: readonly StatisticsTap[],
    tapTable: number,
  ) {
    this.held = sharedSums(taps);
    const positions = 2 * (owner.plan.steps.length + 1);
    this.table = new Int32Array(positions + (TAP.bytes / 4) * taps.length);
    this.offsets = [];
    this.first = [];
    const records = new Map<number, number>();
    let offset = 0;
    taps.forEach((t, i) => {
      const position = tapPosition(t);
      const shared = records.get(position);
      if (shared !== undefined) {
        this.offsets.push(this.offsets[shared]!);
        return;
      }
      records.set(position, i);
      this.first.push(i);
      const record = positions + (TAP.bytes / 4) * i;
      this.table[position] = tapTable + record * 4;
      this.table[record + TAP.channels] = t.channels;
      this.table[record + TAP.offset] = offset;
      this.offsets.push(offset);
      offset += 16 * t.channels;
    });
    this.bytes = offset;
    this.steps = stepsNeeded(taps);
  }

  /** Every row run so far, the executor's accumulators collected first. */
  get sums(): readonly ChannelSums[] {
    this.owner.collectPending(this);
    return this.held;
  }

  reset(): void {
    this.owner.discardPending(this);
    for (const s of new Set(this.held)) s.reset();
  }
}
