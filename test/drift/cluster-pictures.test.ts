import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/nn/index.js';
import {
  type DriftOptions,
  DriftService,
  encodeSampleRows,
  type LayerPictures,
  ModelRegistry,
  nestedRows,
  PEER_RECENT_REUSE_MS,
  type PeerSampleCollector,
  recentRowsOf,
  runSources,
  type TrafficSampleMessage,
  trafficSampleSchema,
} from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { testDriftOptions } from '../helpers/drift-options.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

const registries: ModelRegistry[] = [];
afterAll(() => {
  for (const r of registries.splice(0)) r.close();
  removeTempDirs();
});

/** The live mean and std sum the same values in another order (float64): last digits only. */
const SUM_ORDER_RTOL = 1e-12;

const OPTIONS = testDriftOptions({ autoRecalibrate: 'off', autoMinRows: 256, share: true });

const overIpc = (m: TrafficSampleMessage) =>
  trafficSampleSchema.parse(JSON.parse(JSON.stringify(m)));

function expectSamePictures(merged: LayerPictures, whole: LayerPictures): void {
  expect(merged.rows).toBe(whole.rows);
  expect(merged.layers.map((l) => l.path)).toEqual(whole.layers.map((l) => l.path));
  merged.layers.forEach((layer, i) => {
    const one = whole.layers[i]!;
    // Counts, bins and the share below zero: exactly those of one process.
    expect(layer.before).toEqual(one.before);
    expect(layer.after).toEqual(one.after);
    expect(layer.below_zero).toBe(one.below_zero);
    expect(layer.running).toEqual(one.running);
    for (const key of ['mean', 'std'] as const) {
      layer.live[key].forEach((v, c) => {
        const w = one.live[key][c]!;
        expect(Math.abs(v - w), `${layer.path} live ${key}[${c}]`).toBeLessThanOrEqual(
          SUM_ORDER_RTOL * Math.max(1, Math.abs(w)),
        );
      });
    }
  });
}

describe('the pictures of GET …/drift/layers with two workers', () => {
  it('any worker draws them from both workers’ recent rows, as one process that served them all', async () => {
    const repository = makeTempDir('cluster-pictures');
    copyBundledModel('digits', repository);
    const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
    await registry.refresh();
    const [a, b, alone] = [1, 2, 3].map(
      (seed) => new DriftService({ ...OPTIONS, seed, decides: seed !== 2 }),
    ) as [DriftService, DriftService, DriftService];
    for (const s of [a, b, alone]) s.useRegistry(registry);
    const peersOf =
      (other: DriftService, worker: number) =>
      async (
        model: string,
        _version: number,
        onSample: (w: number, m: TrafficSampleMessage) => void,
        kind?: string,
      ) => {
        expect(kind).toBe('recent');
        onSample(worker, overIpc(other.recentSample(model)));
        return { asked: 1, leftOut: [] };
      };
    a.usePeerSamples(peersOf(b, 2));
    b.usePeerSamples(peersOf(a, 1));

    const { x } = digitsTestRows();
    const night = nightShift(x);
    const rng = new Rng(4242);
    // 200 rows, under the 256 each keeps: 2 of 5 to worker a, the rest to b; all to `alone`.
    for (let i = 0; i < 200; i++) {
      const row = nestedRows([(i % 2 === 0 ? night : x)[rng.int(x.length)]!], 64);
      runSources(registry.resolve('digits'), [row], true, i % 5 < 2 ? a : b);
      runSources(registry.resolve('digits'), [row], true, alone);
    }
    const own = (s: DriftService) => s.recentSample('digits').size;
    expect([own(a), own(b), own(alone)]).toEqual([80, 120, 200]);
    const whole = await alone.pictures('digits');
    expect(whole.rows).toBe(200);
    expect(whole.layers.length).toBeGreaterThan(0);
    expectSamePictures(await a.pictures('digits'), whole);
    expectSamePictures(await b.pictures('digits'), whole);
    registry.close();
  });
});

/** A registry of digits and a drift service that served `rows` rows of it (seeded). */
async function servedService(rows: number, options: Partial<DriftOptions> = {}) {
  const repository = makeTempDir('cluster-pictures');
  copyBundledModel('digits', repository);
  const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
  await registry.refresh();
  registries.push(registry);
  const service = new DriftService({ ...OPTIONS, seed: 7, ...options });
  service.useRegistry(registry);
  const { x } = digitsTestRows();
  const rng = new Rng(99);
  for (let i = 0; i < rows; i++)
    runSources(
      registry.resolve('digits'),
      [nestedRows([x[rng.int(x.length)]!], 64)],
      true,
      service,
    );
  return { registry, service };
}

describe('the other workers’ recent rows for the pictures', () => {
  it('concurrent calls share one gathering, and its result is reused for PEER_RECENT_REUSE_MS', async () => {
    let nowMs = 1_000_000;
    const { service } = await servedService(30, { now: () => nowMs });
    const { service: other } = await servedService(20);
    let gatherings = 0;
    let release: () => void = () => {};
    // The first gathering waits until every call has come; later ones answer at once.
    const firstHeld = new Promise<void>((resolve) => {
      release = resolve;
    });
    service.usePeerSamples(async (model, _version, onSample) => {
      gatherings++;
      if (gatherings === 1) await firstHeld;
      onSample(2, overIpc(other.recentSample(model)));
      return { asked: 1, leftOut: [] };
    });
    const calls = [1, 2, 3].map(() => service.pictures('digits'));
    // Let every call reach the gathering before it ends.
    await new Promise((resolve) => setImmediate(resolve));
    release();
    const answers = await Promise.all(calls);
    expect(gatherings).toBe(1);
    for (const a of answers) {
      expect(a.rows).toBe(50);
      expect(a.workers_left_out).toEqual([]);
    }
    // Within the reuse time: the same gathering.
    nowMs += PEER_RECENT_REUSE_MS - 1;
    expect((await service.pictures('digits')).rows).toBe(50);
    expect(gatherings).toBe(1);
    // After it: gathered again.
    nowMs += 1;
    expect((await service.pictures('digits')).rows).toBe(50);
    expect(gatherings).toBe(2);
  });

  it('names the workers left out: no answer in time, rows of another version', async () => {
    const { service } = await servedService(30);
    const { service: other } = await servedService(20);
    service.usePeerSamples(async (model, _version, onSample) => {
      onSample(2, overIpc(other.recentSample(model)));
      onSample(3, overIpc({ ...other.recentSample(model), version: 7 }));
      onSample(4, overIpc(other.recentSample('nothing-served')));
      return { asked: 4, leftOut: [{ worker: 5, reason: 'no answer within 5000 ms' }] };
    });
    const pictures = await service.pictures('digits');
    // Its own 30 and worker 2's 20; worker 4 answered with no rows: not left out.
    expect(pictures.rows).toBe(50);
    expect(pictures.workers_left_out).toEqual([
      { worker: 3, reason: 'its sample is of version 7' },
      { worker: 5, reason: 'no answer within 5000 ms' },
    ]);
  });

  it('a primary that does not answer: the pictures from the rows that came (its own at least), not an error', async () => {
    const { service } = await servedService(30);
    const { service: other } = await servedService(20);
    const silent: PeerSampleCollector = async (model, _version, onSample) => {
      onSample(2, overIpc(other.recentSample(model)));
      throw new Error('no normserve:sample-done within 10000 ms');
    };
    service.usePeerSamples(silent);
    const pictures = await service.pictures('digits');
    expect(pictures.rows).toBe(50);
    expect(pictures.layers.length).toBeGreaterThan(0);
    expect(pictures.workers_left_out).toEqual([
      {
        reason: "the others' rows did not all come: no normserve:sample-done within 10000 ms",
      },
    ]);
  });
});

describe('recentRowsOf', () => {
  const sample = (version: number | null, width: number, values: number[]) =>
    overIpc({
      model: 'digits',
      version,
      width,
      size: values.length / width,
      seen: values.length / width,
      rows: encodeSampleRows(Float32Array.from(values)),
    });

  it('puts the rows of the version one after the other and leaves out other versions and widths', () => {
    const merged = recentRowsOf(
      [
        sample(3, 2, [1, 2, 3, 4]),
        sample(2, 2, [9, 9]),
        sample(3, 2, [5, 6]),
        sample(3, 1, [7]),
        sample(null, 2, []),
      ],
      3,
      2,
    );
    expect(merged.count).toBe(3);
    expect(Array.from(merged.rows)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(recentRowsOf([], 3, 2)).toEqual({ rows: new Float32Array(0), count: 0 });
  });
});
