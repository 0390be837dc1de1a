import { afterAll, describe, expect, it } from 'vitest';
import {
  DriftService,
  decodeSampleRows,
  InferenceService,
  ModelRegistry,
  nestedRows,
  type PredictOutput,
  runSources,
} from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { testDriftOptions } from '../helpers/drift-options.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const OPTIONS = testDriftOptions({ autoRecalibrate: 'candidate', autoMinRows: 10_000 });

const rows = digitsTestRows().x;
const huge = Array.from({ length: 64 }, () => 3e38);

async function setup() {
  const repository = makeTempDir('refused-rows');
  copyBundledModel('digits', repository);
  const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
  await registry.refresh();
  const drift = new DriftService({ ...OPTIONS, now: () => 1_000_000 });
  drift.useRegistry(registry);
  // No dynamic batching: each infer() is one engine call.
  const unbatched = new InferenceService(registry, {
    batchMaxDelayUs: 0,
    batchMaxRows: 64,
    observer: drift,
  });
  return { registry, drift, served: registry.resolve('digits'), unbatched };
}

const bits = (out: PredictOutput) => Buffer.from(out.outputs.slice().buffer).toString('hex');

describe('a refused request', () => {
  it('in a dynamic batch: the others are answered bit for bit as alone, and only they are observed', async () => {
    const { registry, drift, served } = await setup();
    const service = new InferenceService(registry, {
      batchMaxDelayUs: 500_000,
      batchMaxRows: 4,
      observer: drift,
    });
    const requests = [[rows[0]!], [huge], [rows[1]!, rows[2]!]];
    const results = await Promise.all(
      requests.map((r) => service.infer(served, nestedRows(r, 64))),
    );
    expect(results.map((r) => r.batchRows)).toEqual([4, 4, 4]);
    expect(results.map((r) => r.overflowRows)).toEqual([[], [0], []]);
    for (const i of [0, 2]) {
      const alone = runSources(served, [nestedRows(requests[i]!, 64)])[0]!;
      expect(bits(results[i]!)).toBe(bits(alone));
    }
    // The taps summed the refused row with the others: the call gives no statistics.
    expect(drift.report('digits').active!.rows).toBe(0);
    // Its answered rows are traffic: sample and recent rows hold exactly them.
    const sample = drift.trafficSample('digits');
    expect(sample.size).toBe(3);
    const held = Array.from(decodeSampleRows(sample));
    const answered = Array.from(Float32Array.from([rows[0]!, rows[1]!, rows[2]!].flat()));
    expect([...held].sort((a, b) => a - b)).toEqual([...answered].sort((a, b) => a - b));
    expect((await drift.pictures('digits')).rows).toBe(3);

    // Statistics gathered afterwards are whole numbers again.
    runSources(served, [nestedRows(rows.slice(3, 11), 64)], true, drift);
    const r = drift.report('digits').active!;
    expect(r.layers.every((l) => l.count === 0 || Number.isFinite(l.score))).toBe(true);
    expect(r.rows).toBe(8);
    expect(Number.isFinite(r.score)).toBe(true);
  });

  it('alone (no batching): nothing of it is observed', async () => {
    const { drift, served, unbatched: service } = await setup();
    await service.infer(served, nestedRows(rows.slice(0, 5), 64));
    const refused = await service.infer(served, nestedRows([rows[5]!, huge], 64));
    expect(refused.overflowRows).toEqual([1]);
    expect(drift.trafficSample('digits').size).toBe(5);
    const pictures = await drift.pictures('digits');
    expect(pictures.rows).toBe(5);
    for (const layer of pictures.layers) expect(JSON.stringify(layer)).not.toMatch(/e\+3\d/);
  });

  it("after a refusal, the next refused call drops its own statistics, not the others' since", async () => {
    const { drift, served, unbatched: service } = await setup();
    // The first refusal drops what was not folded yet (here 5 rows): the taps mixed them.
    await service.infer(served, nestedRows(rows.slice(0, 5), 64));
    await service.infer(served, nestedRows([huge], 64));
    // From then on each call is folded as it ends: a second refusal drops only itself.
    await service.infer(served, nestedRows(rows.slice(5, 12), 64));
    await service.infer(served, nestedRows([rows[12]!, huge], 64));
    await service.infer(served, nestedRows(rows.slice(13, 16), 64));
    expect(drift.report('digits')!.active!.rows).toBe(7 + 3);
  });
});

describe('drift folding', () => {
  it('refuses sums that are not finite', async () => {
    const { drift, served } = await setup();
    runSources(served, [nestedRows(rows.slice(0, 10), 64)], true, drift);
    expect(drift.report('digits').active!.rows).toBe(10);
    const version = drift.versionDrift(served)!;
    runSources(served, [nestedRows(rows.slice(10, 20), 64)], true, drift);
    // As a value that overflowed inside the network would leave them (its row's outputs finite).
    version.probe.sums[0]!.sumSquares[0] = Number.POSITIVE_INFINITY;
    const r = drift.report('digits').active!;
    expect(r.rows).toBe(10);
    expect(r.layers.every((l) => Number.isFinite(l.score))).toBe(true);
  });
});
