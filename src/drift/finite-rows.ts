import type { ChannelSums, Executor, StatisticsProbe } from '../inference/index.js';
import { TURN_ROWS } from './turn-rows.js';

/**
 * The rows of `input` ([rows, inputWidth]) whose tapped tensors are all finite, in order, and how
 * many: a row whose outputs are finite may still have overflowed inside the network (−∞ before a
 * ReLU, which clamps it to 0), and its BatchNorm statistics are then ±∞ or NaN — a recalibration
 * or a picture of such a row fails. The taps' float64 sums are finite exactly when every value they
 * read is (a float32 value's square is at most 1.2e77), so one statistics pass
 * (Executor.accumulate, through the last tapped step) clears a whole sample; only when it does not
 * are blocks of TURN_ROWS checked, and the rows of a block that fails one by one: at most about
 * three passes' work. `input` itself is returned when every row is kept.
 */
export function rowsWithFiniteStatistics(
  executor: Executor,
  probe: StatisticsProbe,
  input: Float32Array,
  rows: number,
): { rows: Float32Array; count: number } {
  const finite = finiteCheck(executor, probe, input);
  if (rows === 0 || finite(0, rows)) return { rows: input, count: rows };
  const kept: number[] = [];
  for (let from = 0; from < rows; from += TURN_ROWS) {
    const count = Math.min(TURN_ROWS, rows - from);
    if (finite(from, count)) for (let r = from; r < from + count; r++) kept.push(r);
    else for (let r = from; r < from + count; r++) if (finite(r, 1)) kept.push(r);
  }
  probe.reset();
  return rowsOf(input, executor.plan.inputWidth, kept);
}

/**
 * rowsWithFiniteStatistics' rows, the same, found a block of TURN_ROWS rows at a time, with a
 * yield after each (the caller's pause: a block is a few milliseconds of a convolutional model's
 * work). The whole sample's sums are finite exactly when every block's are (float64 sums of
 * float32 values and squares do not overflow), so checking the blocks first keeps the same rows.
 * `input` and the probe's sums must not be used by others until it returns; each check is one
 * synchronous call (reset, accumulate, read), so others may use the probe between two yields.
 */
export function* rowsWithFiniteStatisticsInBlocks(
  executor: Executor,
  probe: StatisticsProbe,
  input: Float32Array,
  rows: number,
): Generator<void, { rows: Float32Array; count: number }, void> {
  const finite = finiteCheck(executor, probe, input);
  const kept: number[] = [];
  for (let from = 0; from < rows; from += TURN_ROWS) {
    const count = Math.min(TURN_ROWS, rows - from);
    if (finite(from, count)) for (let r = from; r < from + count; r++) kept.push(r);
    else for (let r = from; r < from + count; r++) if (finite(r, 1)) kept.push(r);
    yield;
  }
  probe.reset();
  if (kept.length === rows) return { rows: input, count: rows };
  return rowsOf(input, executor.plan.inputWidth, kept);
}

/** Whether rows from … from+count−1 of `input` have finite sums at every tap of `probe`. */
function finiteCheck(
  executor: Executor,
  probe: StatisticsProbe,
  input: Float32Array,
): (from: number, count: number) => boolean {
  const width = executor.plan.inputWidth;
  return (from, count) => {
    probe.reset();
    executor.accumulate(input.subarray(from * width, (from + count) * width), count, probe);
    return probe.sums.every(finiteSums);
  };
}

/** The rows `kept` of `input` ([rows, width]), in a new array, and how many. */
function rowsOf(
  input: Float32Array,
  width: number,
  kept: readonly number[],
): { rows: Float32Array; count: number } {
  const out = new Float32Array(kept.length * width);
  kept.forEach((r, i) => {
    out.set(input.subarray(r * width, (r + 1) * width), i * width);
  });
  return { rows: out, count: kept.length };
}

function finiteSums(sums: ChannelSums): boolean {
  for (let c = 0; c < sums.channels; c++)
    if (!Number.isFinite(sums.sum[c]!) || !Number.isFinite(sums.sumSquares[c]!)) return false;
  return true;
}
