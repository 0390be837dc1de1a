import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/nn/index.js';
import {
  type DriftOptions,
  DriftService,
  driftShareSchema,
  ModelRegistry,
  nestedRows,
  runSources,
} from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { testDriftOptions } from '../helpers/drift-options.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

/** The same float64 moments merged in another order (Chan's pairwise update): relative. */
const MERGE_ORDER_RTOL = 1e-9;

afterAll(removeTempDirs);

const OPTIONS = testDriftOptions({ autoRecalibrate: 'recommend', autoMinRows: 512 });

describe('drift shared between processes', () => {
  it('two services that each saw part of the traffic both report all of it, as one service would', async () => {
    const repository = makeTempDir('drift-share');
    copyBundledModel('digits', repository);
    const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
    await registry.refresh();
    const served = registry.resolve('digits');
    const make = (options: Partial<DriftOptions>) => {
      const s = new DriftService({ ...OPTIONS, ...options });
      s.useRegistry(registry);
      return s;
    };
    const decider = make({ share: true });
    const other = make({ share: true, decides: false });
    const whole = make({});
    expect(other.decides).toBe(false);

    // Night traffic, one row per call, split 1 : 2 between the two "workers".
    const night = nightShift(digitsTestRows().x);
    const rng = new Rng(18);
    const rows = 240;
    let toDecider = 0;
    for (let i = 0; i < rows; i++) {
      const row = nestedRows([night[rng.int(night.length)]!], 64);
      const worker = i % 3 === 0 ? decider : other;
      if (worker === decider) toDecider++;
      runSources(served, [row], true, worker);
      runSources(served, [row], true, whole);
    }
    expect(decider.report('digits').active!.rows).toBe(toDecider);
    expect(other.report('digits').active!.rows).toBe(rows - toDecider);

    // The exchange, through the IPC schema as the primary relays it.
    const fromDecider = driftShareSchema.parse(JSON.parse(JSON.stringify(decider.takeShare())));
    const fromOther = driftShareSchema.parse(JSON.parse(JSON.stringify(other.takeShare())));
    // The decider's automatic recalibration state travels; the other one has none to tell.
    expect(fromDecider.auto?.map((a) => a.model)).toEqual(['digits']);
    expect(fromDecider.auto?.[0]?.last_action).toBeNull();
    expect(fromOther.auto).toBeUndefined();
    decider.mergeShare(fromOther);
    other.mergeShare(fromDecider);
    // Nothing new since: no share (a worker's own traffic is never sent twice).
    expect(decider.takeShare()).toBeUndefined();
    expect(other.takeShare()).toBeUndefined();

    const expected = whole.report('digits');
    expect(expected.active!.recommended).toBe(true);
    for (const s of [decider, other]) {
      const report = s.report('digits');
      expect(report.active!.rows).toBe(rows);
      expect(report.active!.recommended).toBe(true);
      expect(Math.abs(report.active!.score / expected.active!.score - 1)).toBeLessThan(
        MERGE_ORDER_RTOL,
      );
      report.active!.layers.forEach((l, i) => {
        const e = expected.active!.layers[i]!;
        expect(l.count).toBe(e.count);
        expect(Math.abs(l.mean_shift / e.mean_shift - 1)).toBeLessThan(MERGE_ORDER_RTOL);
        expect(Math.abs(l.log_std_ratio / e.log_std_ratio - 1)).toBeLessThan(MERGE_ORDER_RTOL);
      });
      expect(report.active!.timeline.reduce((n, w) => n + w.rows, 0)).toBe(rows);
    }

    // Each saw fewer than DRIFT_MIN_ROWS rows itself; with the other's share the decider acts
    // (AUTO_RECALIBRATE=recommend) at its next look, and only it: the other reports its state.
    // (It looks every 64 of its rows.)
    for (let i = 0; i < 64; i++) {
      runSources(served, [nestedRows([night[rng.int(night.length)]!], 64)], true, decider);
      runSources(served, [nestedRows([night[rng.int(night.length)]!], 64)], true, other);
    }
    const acted = decider.report('digits').auto_recalibration.last_action;
    expect(acted).toMatchObject({ action: 'recommend', outcome: 'succeeded', version: 1 });
    expect(other.report('digits').auto_recalibration.last_action).toBeNull();
    other.mergeShare(driftShareSchema.parse(JSON.parse(JSON.stringify(decider.takeShare()))));
    expect(other.report('digits').auto_recalibration.last_action).toEqual(acted);
    // Its own 64 rows and the decider's 64.
    expect(other.report('digits').active!.rows).toBe(rows + 128);

    // The other takes over when told: it acts on its own from then on.
    other.setDecides(true);
    expect(other.decides).toBe(true);
    expect(other.report('digits').auto_recalibration.last_action).toEqual(acted);
    registry.close();
  });

  it('refuses shared statistics that do not fit the version', async () => {
    const repository = makeTempDir('drift-share-misfit');
    copyBundledModel('digits', repository);
    const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
    await registry.refresh();
    const warnings: string[] = [];
    const log = {
      warn: (_: object, msg?: string) => warnings.push(msg ?? ''),
      info: () => undefined,
      error: () => undefined,
    };
    const s = new DriftService({ ...OPTIONS, share: true, log });
    s.useRegistry(registry);
    s.mergeShare({
      versions: [
        {
          model: 'digits',
          version: 1,
          windows: [{ start: Date.now(), rows: 1, layers: [{ count: 1, mean: [0], m2: [0] }] }],
        },
      ],
    });
    expect(warnings).toEqual(['shared drift statistics ignored']);
    expect(s.report('digits').active?.rows ?? 0).toBe(0);
    registry.close();
  });
});
