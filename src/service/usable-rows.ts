import { rowsWithFiniteStatistics, rowsWithFiniteStatisticsInBlocks } from '../drift/index.js';
import type { StatisticsProbe } from '../inference/index.js';
import type { AvailableVersion } from './model-registry.js';

/** The check of a version's rows for BatchNorm inputs that are not finite, a probe per version. */
export class UsableRows {
  /** Per version, a probe of its observable BatchNorm inputs for usableRows (null: none). */
  private readonly checkProbes = new WeakMap<AvailableVersion, StatisticsProbe | null>();

  /**
   * `rows` of traffic the version answered ([count, inputWidth]) without those whose BatchNorm
   * inputs are not finite on it: a row whose outputs are finite may still have overflowed inside
   * the network (−∞ before a ReLU, which clamps it to +0), and it would make a recalibration from
   * traffic fail, or the pictures' statistics ±∞. The traffic sample and the recent rows take every
   * answered row as it is served (telling such a row apart there would cost every call a look at
   * the taps' sums); the rows are checked here, when used, in one statistics pass
   * (rowsWithFiniteStatistics) on the served executor with a probe of their own.
   */
  usableRows(
    served: AvailableVersion,
    rows: Float32Array,
    count: number,
  ): { rows: Float32Array; count: number } {
    const probe = this.probeOf(served);
    if (!probe) return { rows, count };
    return rowsWithFiniteStatistics(served.compiled.executor, probe, rows, count);
  }

  /**
   * usableRows' rows, the same, checked 64 rows per turn of the event loop (the pictures: a
   * convolutional model's statistics pass over 256 rows holds the loop ~7 ms, docs/drift.md).
   * `rows` must not change until it settles.
   */
  async usableRowsInTurns(
    served: AvailableVersion,
    rows: Float32Array,
    count: number,
  ): Promise<{ rows: Float32Array; count: number }> {
    const probe = this.probeOf(served);
    if (!probe) return { rows, count };
    const checking = rowsWithFiniteStatisticsInBlocks(served.compiled.executor, probe, rows, count);
    for (;;) {
      const step = checking.next();
      if (step.done) return step.value;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private probeOf(served: AvailableVersion): StatisticsProbe | null {
    let probe = this.checkProbes.get(served);
    if (probe === undefined) {
      const taps = served.compiled.plan.batchNormInputs.flatMap((b) => (b.tap ? [b.tap] : []));
      probe = taps.length > 0 ? served.compiled.executor.createProbe(taps) : null;
      this.checkProbes.set(served, probe);
    }
    return probe;
  }
}
