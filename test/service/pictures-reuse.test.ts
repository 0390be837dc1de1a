import { afterAll, describe, expect, it } from 'vitest';
import {
  type AvailableVersion,
  DriftService,
  decodeSampleRows,
  layerPictures,
  ModelRegistry,
  nestedRows,
  runSources,
} from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { testDriftOptions } from '../helpers/drift-options.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const rows = digitsTestRows().x;

/** What layerPictures draws from the process's recent rows of `name`, computed afresh. */
function drawnAfresh(drift: DriftService, served: AvailableVersion) {
  const sample = drift.recentSample(served.name);
  return layerPictures(
    {
      network: served.checkpoint.network,
      inputTransform: served.checkpoint.config.input_transform,
      inputShape: served.compiled.inputShape,
      plan: served.compiled.plan,
      engine: served.compiled.executor.engine,
    },
    decodeSampleRows(sample),
    sample.size,
  );
}

describe('the pictures of recent traffic', () => {
  it('are drawn once for the same rows and again, exactly, when a row arrives', async () => {
    const repository = makeTempDir('pictures-reuse');
    copyBundledModel('digits-cnn', repository);
    const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
    await registry.refresh();
    const drift = new DriftService({
      ...testDriftOptions({ autoRecalibrate: 'off', autoMinRows: 10_000 }),
      now: () => 1_000_000,
    });
    drift.useRegistry(registry);
    const served = registry.resolve('digits-cnn');

    runSources(served, [nestedRows(rows.slice(0, 20), 64)], true, drift);
    const first = await drift.pictures('digits-cnn');
    expect(first.rows).toBe(20);
    expect(first.layers.length).toBe(4);
    expect(first.layers).toStrictEqual(drawnAfresh(drift, served));
    // No traffic since: the same pictures, not drawn again.
    const again = await drift.pictures('digits-cnn');
    expect(again.layers).toBe(first.layers);
    expect(again.rows).toBe(20);

    // One more row: drawn again, from the 21 rows.
    runSources(served, [nestedRows(rows.slice(20, 21), 64)], true, drift);
    const next = await drift.pictures('digits-cnn');
    expect(next.rows).toBe(21);
    expect(next.layers).not.toBe(first.layers);
    expect(next.layers).toStrictEqual(drawnAfresh(drift, served));
    expect(next.layers).not.toStrictEqual(first.layers);
    expect((await drift.pictures('digits-cnn')).layers).toBe(next.layers);

    // Two calls while new rows are drawn (over several turns): one drawing, both answered by it.
    runSources(served, [nestedRows(rows.slice(21, 40), 64)], true, drift);
    const [one, two] = await Promise.all([
      drift.pictures('digits-cnn'),
      drift.pictures('digits-cnn'),
    ]);
    expect(one.rows).toBe(40);
    expect(two.layers).toBe(one.layers);
    expect(one.layers).toStrictEqual(drawnAfresh(drift, served));
  });
});
