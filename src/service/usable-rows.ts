import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  rowsWithFiniteStatistics,
  rowsWithFiniteStatisticsInBlocks,
  TURN_ROWS,
} from '../drift/index.js';
import {
  batchNormTaps,
  compileNetwork,
  createExecutor,
  type Executor,
  type StatisticsProbe,
} from '../inference/index.js';
import type { AvailableVersion } from './model-registry.js';

/** A plan that computes every BatchNorm's input as it is, its executor and a probe of them. */
interface InputCheck {
  executor: Executor;
  probe: StatisticsProbe;
}

/** The check of a version's rows for BatchNorm inputs that are not finite, one per version. */
export class UsableRows {
  /** Per version, its check (null: no BatchNorm). */
  private readonly checks = new WeakMap<AvailableVersion, InputCheck | null>();

  /**
   * `rows` of traffic the version answered ([count, inputWidth]) without those whose BatchNorm
   * inputs are not finite on it: a row whose outputs are finite may still have overflowed inside
   * the network (−∞ before a ReLU, which clamps it to +0), and it would make a recalibration from
   * traffic fail, or the pictures' statistics ±∞. The traffic sample and the recent rows take every
   * answered row as it is served (telling such a row apart there would cost every call a look at
   * the taps' sums); the rows are checked here, when used, in one statistics pass
   * (rowsWithFiniteStatistics) with a plan and executor of their own (inputCheck).
   */
  usableRows(
    served: AvailableVersion,
    rows: Float32Array,
    count: number,
  ): { rows: Float32Array; count: number } {
    const check = this.inputCheck(served);
    if (!check) return { rows, count };
    return rowsWithFiniteStatistics(check.executor, check.probe, rows, count);
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
    const check = this.inputCheck(served);
    if (!check) return { rows, count };
    const checking = rowsWithFiniteStatisticsInBlocks(check.executor, check.probe, rows, count);
    for (;;) {
      const step = checking.next();
      if (step.done) return step.value;
      await nextTurn();
    }
  }

  /**
   * The version's network compiled with every BatchNorm as its own affine step (foldBatchNorms
   * false, as a recalibration's statistics plans; the pictures' prefix plans end at each input
   * too), so each BatchNorm's input is a tensor of the plan, tapped as it is. The served plan
   * cannot stand in: a BatchNorm folded into the step before it is read there as y = x·s + t,
   * which has no tap when γ = 0 on a channel (x cannot be recovered) and may be finite where x is
   * ±∞ (s < 1) or ±∞ where x is finite (s > 1) — test/drift/overflow-inside.test.ts. Made on the
   * first check, on the served engine, and kept with the version.
   */
  private inputCheck(served: AvailableVersion): InputCheck | null {
    let check = this.checks.get(served);
    if (check === undefined) {
      const { network, config } = served.checkpoint;
      const plan = compileNetwork(network, config.input_transform, served.compiled.inputShape, {
        foldBatchNorms: false,
      });
      if (plan.batchNormInputs.length === 0) {
        check = null;
      } else {
        const executor = createExecutor(plan, {
          engine: served.compiled.executor.engine,
          maxBatchSize: TURN_ROWS,
        });
        check = { executor, probe: executor.createProbe(batchNormTaps(plan.batchNormInputs)) };
      }
      this.checks.set(served, check);
    }
    return check;
  }
}
