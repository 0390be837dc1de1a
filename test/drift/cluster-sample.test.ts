/**
 * Recalibration from traffic with WORKERS > 1, in one process: every worker keeps a traffic sample
 * of the rows it served and tells its size in its shares; the decider, once the cluster's samples
 * hold AUTO_RECALIBRATE_MIN_ROWS rows, collects the others' (here a function in place of the
 * primary's IPC, with the messages through their schemas) and recalibrates from one uniform sample
 * of all of them. The IPC messages and the primary's collection (fake workers, fake timers).
 */

import type { Worker } from 'node:cluster';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ClusterDriftPrimary } from '../../src/cli/cluster-drift.js';
import { fromPrimarySchema, fromWorkerSchema } from '../../src/cli/cluster-messages.js';
import { Rng } from '../../src/nn/index.js';
import {
  DriftService,
  driftShareSchema,
  encodeSampleRows,
  JobRegistry,
  ModelRegistry,
  nestedRows,
  type PeerSampleCollector,
  RecalibrationService,
  runBatch,
  runSources,
  type TrafficSampleMessage,
  trafficSampleSchema,
} from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { testDriftOptions } from '../helpers/drift-options.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);
afterEach(() => {
  vi.useRealTimers();
});

const OPTIONS = testDriftOptions({
  autoRecalibrate: 'promote',
  autoMinRows: 256,
  share: true,
});

const { x, y } = digitsTestRows();
const night = nightShift(x);

/** Through JSON and the schema, as the IPC carries it. */
const overIpc = (m: TrafficSampleMessage) =>
  trafficSampleSchema.parse(JSON.parse(JSON.stringify(m)));

async function cluster() {
  const repository = makeTempDir('cluster-sample');
  copyBundledModel('digits', repository);
  const registry = new ModelRegistry(repository, { maxBatchSize: 64 });
  await registry.refresh();
  const logs: { msg: string; context: Record<string, unknown> }[] = [];
  const log = {
    info: (context: object, msg?: string) =>
      logs.push({ msg: msg ?? '', context: context as Record<string, unknown> }),
    warn: (context: object, msg?: string) =>
      logs.push({ msg: msg ?? '', context: context as Record<string, unknown> }),
    error: (context: object, msg?: string) =>
      logs.push({ msg: msg ?? '', context: context as Record<string, unknown> }),
  };
  const decider = new DriftService({ ...OPTIONS, seed: 1, log });
  const other = new DriftService({ ...OPTIONS, seed: 2, decides: false });
  for (const s of [decider, other]) s.useRegistry(registry);
  decider.useRecalibration(
    new RecalibrationService(registry, new JobRegistry(), { maxSamples: Number.MAX_SAFE_INTEGER }),
  );
  return { registry, decider, other, logs };
}

describe('recalibration from the traffic of several workers', () => {
  it('draws from every worker’s sample once the cluster holds the minimum, not the decider alone', async () => {
    const { registry, decider, other, logs } = await cluster();
    const collect: PeerSampleCollector = async (model, version, onSample) => {
      expect({ model, version }).toEqual({ model: 'digits', version: 1 });
      onSample(2, overIpc(other.trafficSample(model)));
      return { asked: 1, leftOut: [] };
    };
    decider.usePeerSamples(collect);
    const rng = new Rng(1225);
    let sent = 0;
    let toDecider = 0;
    // Two rows of three to the other worker; shares every 30 rows (a second of traffic).
    while (registry.get('digits').versions.size < 2 && sent < 1000) {
      const row = nestedRows([night[rng.int(night.length)]!], 64);
      const worker = sent % 3 === 0 ? decider : other;
      if (worker === decider) toDecider++;
      runSources(registry.resolve('digits'), [row], true, worker);
      sent++;
      if (sent % 30 === 0) {
        const share = other.takeShare();
        if (share) decider.mergeShare(driftShareSchema.parse(JSON.parse(JSON.stringify(share))), 2);
      }
      if (sent === 240)
        // The cluster's rows, shared a moment ago: 240 of them (the decider's own 80).
        expect(decider.report('digits').auto_recalibration.sample_rows).toBe(240);
      await decider.drain();
    }
    const started = logs.filter((l) => l.msg === 'drift: recalibrating from traffic');
    expect(started).toHaveLength(1);
    const c = started[0]!.context;
    expect(c).toMatchObject({ workers: 2, leftOut: [] });
    // Every row the cluster had served (all under the capacity), two thirds from the other.
    expect(c.rows).toBe(c.trafficRows);
    expect(c.rows as number).toBeGreaterThanOrEqual(OPTIONS.autoMinRows);
    // The decider alone holds a third of it: it would have waited for 3 × 256 requests.
    expect(toDecider).toBeLessThan(OPTIONS.autoMinRows);
    expect(sent).toBeLessThan(2 * OPTIONS.autoMinRows);
    expect(registry.get('digits').active).toBe(2);
    const served = registry.resolve('digits');
    const labels = runBatch(served, Float32Array.from(night.flat()), night.length).labels!;
    const accuracy = labels.filter((l, i) => Number(l) === y[i]).length / y.length;
    expect(accuracy).toBeGreaterThanOrEqual(0.93);
    expect(served.checkpoint.config.provenance).toMatchObject({
      source: 'traffic',
      samples: c.rows,
    });
    registry.close();
  });

  it('a share that completes the minimum makes the decider act at once; a filling sample asks to be shared', async () => {
    const { registry, decider, other, logs } = await cluster();
    let grew = 0;
    other.onSampleGrew(() => grew++);
    decider.usePeerSamples(async (model, _version, onSample) => {
      onSample(2, overIpc(other.trafficSample(model)));
      return { asked: 1, leftOut: [] };
    });
    const rng = new Rng(34);
    const feed = (s: DriftService, n: number) => {
      for (let i = 0; i < n; i++)
        runSources(
          registry.resolve('digits'),
          [nestedRows([night[rng.int(night.length)]!], 64)],
          true,
          s,
        );
    };
    feed(decider, 40);
    feed(other, 230);
    // Every SAMPLE_GREW_ROWS (64) rows while the sample fills.
    expect(grew).toBe(3);
    // The decider's own 40 rows never made it look; the share alone does.
    decider.mergeShare(other.takeShare()!, 2);
    await decider.drain();
    const started = logs.filter((l) => l.msg === 'drift: recalibrating from traffic');
    expect(started.map((l) => l.context)).toMatchObject([
      { rows: 270, trafficRows: 270, workers: 2, leftOut: [] },
    ]);
    expect(registry.get('digits').active).toBe(2);
    registry.close();
  });

  it('a cluster sample short of usable rows keeps the decider’s rows and grows', async () => {
    const { registry, decider, other, logs } = await cluster();
    decider.usePeerSamples(async (model, _version, onSample) => {
      onSample(2, overIpc(other.trafficSample(model)));
      return { asked: 1, leftOut: [] };
    });
    const rng = new Rng(56);
    const outlier = new Array<number>(64).fill(1e4);
    const feed = (s: DriftService, n: number, outlyingEvery = 0) => {
      for (let i = 1; i <= n; i++) {
        const row =
          outlyingEvery > 0 && i % outlyingEvery === 0 ? outlier : night[rng.int(night.length)]!;
        runSources(registry.resolve('digits'), [nestedRows([row], 64)], true, s);
      }
    };
    feed(other, 200);
    decider.mergeShare(other.takeShare()!, 2);
    // 64 rows, 10 of them outlying: the cluster's 264 rows hold 254 usable ones.
    feed(decider, 64, 6);
    await decider.drain();
    const postponed = logs.filter((l) =>
      l.msg.startsWith('drift: too few usable rows in the traffic sample'),
    );
    expect(postponed.map((l) => l.context)).toMatchObject([
      { rows: 264, trafficRows: 264, outlierRows: 10, nextTryAtRows: 266 },
    ]);
    // The decider's 64 rows are still in its sample.
    expect(decider.report('digits').auto_recalibration.sample_rows).toBe(264);
    feed(decider, 64);
    await decider.drain();
    const started = logs.filter((l) => l.msg === 'drift: recalibrating from traffic');
    expect(started.map((l) => l.context)).toMatchObject([
      { rows: 328, trafficRows: 328, outlierRows: 10, workers: 2 },
    ]);
    expect(registry.get('digits').active).toBe(2);
    registry.close();
  });

  it('leaves out a worker that serves another version or does not answer, and says so', async () => {
    const { registry, decider, other, logs } = await cluster();
    const rng = new Rng(12);
    const feed = (s: DriftService, n: number) => {
      for (let i = 0; i < n; i++)
        runSources(
          registry.resolve('digits'),
          [nestedRows([night[rng.int(night.length)]!], 64)],
          true,
          s,
        );
    };
    feed(other, 300);
    const share = other.takeShare()!;
    expect(share.samples).toEqual([{ model: 'digits', version: 1, size: 300, seen: 300 }]);
    decider.mergeShare(share, 2);
    decider.usePeerSamples(async (_model, _version, onSample) => {
      onSample(2, { ...overIpc(other.trafficSample('digits')), version: 7 });
      return { asked: 2, leftOut: [{ worker: 3, reason: 'no answer within 5000 ms' }] };
    });
    feed(decider, 64);
    await decider.drain();
    const postponed = logs.filter((l) =>
      l.msg.startsWith('drift: the cluster traffic sample is too small'),
    );
    expect(postponed).toHaveLength(1);
    expect(postponed[0]!.context).toMatchObject({
      rows: 64,
      workers: 1,
      leftOut: [
        { worker: 2, reason: 'its sample is of version 7' },
        { worker: 3, reason: 'no answer within 5000 ms' },
      ],
    });
    expect(registry.get('digits').versions.size).toBe(1);
    // What the others hold is what they answered: the decider waits for its own rows now.
    expect(decider.report('digits').auto_recalibration.sample_rows).toBe(64);
    registry.close();
  });

  it('a non-deciding worker keeps a bounded sample of its own traffic (rows and bytes)', async () => {
    const { registry, other } = await cluster();
    const width = registry.resolve('digits').compiled.inputWidth;
    // 1,024 bytes hold 4 rows of 64 float32 values.
    const small = new DriftService({ ...OPTIONS, sampleBytes: 1024, decides: false });
    small.useRegistry(registry);
    const rng = new Rng(5);
    for (let i = 0; i < 50; i++) {
      const row = [nestedRows([night[rng.int(night.length)]!], 64)];
      runSources(registry.resolve('digits'), row, true, small);
      runSources(registry.resolve('digits'), row, true, other);
    }
    expect(small.trafficSample('digits')).toMatchObject({ version: 1, size: 4, seen: 50 });
    expect(Buffer.byteLength(small.trafficSample('digits').rows, 'base64')).toBe(4 * width * 4);
    expect(other.trafficSample('digits')).toMatchObject({ size: 50, seen: 50 });
    registry.close();
  });
});

describe('sample messages', () => {
  const sample = {
    model: 'digits',
    version: 1,
    width: 2,
    size: 2,
    seen: 9,
    rows: encodeSampleRows(Float32Array.of(1, 2, 3, 4)),
  };

  it('parse on receipt, rows as exact float32 bytes', () => {
    expect(fromWorkerSchema.parse({ type: 'normserve:sample-answer', id: 3, sample })).toEqual({
      type: 'normserve:sample-answer',
      id: 3,
      sample,
    });
    expect(
      fromWorkerSchema.parse({
        type: 'normserve:sample-request',
        id: 0,
        model: 'digits',
        version: 1,
      }).type,
    ).toBe('normserve:sample-request');
    const part = fromPrimarySchema.parse({
      type: 'normserve:sample-part',
      id: 0,
      worker: 2,
      sample,
    });
    expect(part.type === 'normserve:sample-part' && part.sample.rows).toBe(sample.rows);
    expect(
      fromPrimarySchema.parse({
        type: 'normserve:sample-done',
        id: 0,
        asked: 1,
        left_out: [{ worker: 2, reason: 'exited' }],
      }).type,
    ).toBe('normserve:sample-done');
  });

  it('refuse rows that do not hold size × width values, more rows than seen, bad base64', () => {
    const bad = [
      { ...sample, size: 3, seen: 9 },
      { ...sample, size: 2, seen: 1 },
      { ...sample, rows: 'not base64!' },
      { ...sample, width: 0 },
    ];
    for (const s of bad)
      expect(
        fromWorkerSchema.safeParse({ type: 'normserve:sample-answer', id: 1, sample: s }).success,
      ).toBe(false);
    expect(
      fromPrimarySchema.safeParse({ type: 'normserve:drift-shared', share: { versions: [] } })
        .success,
    ).toBe(false); // the relay names the sender
  });
});

describe("the primary's collection", () => {
  function fakeWorker(id: number) {
    const sent: unknown[] = [];
    const worker = {
      id,
      isConnected: () => true,
      send: (m: unknown) => {
        sent.push(m);
        return true;
      },
    } as unknown as Worker;
    return { worker, sent };
  }

  it('asks the other workers, relays each answer to the decider, leaves out the silent and the exited', () => {
    vi.useFakeTimers();
    const primary = new ClusterDriftPrimary(5_000);
    const [a, b, c, d] = [1, 2, 3, 4].map(fakeWorker);
    for (const w of [a!, b!, c!, d!]) primary.add(w.worker);
    primary.requested(a!.worker, {
      type: 'normserve:sample-request',
      id: 7,
      model: 'digits',
      version: 1,
      kind: 'traffic',
    });
    const ask = b!.sent.at(-1) as { type: string; id: number };
    expect(ask).toMatchObject({ type: 'normserve:sample-ask', model: 'digits' });
    expect(c!.sent.at(-1)).toEqual(ask);
    expect(a!.sent.some((m) => (m as { type: string }).type === 'normserve:sample-ask')).toBe(
      false,
    );
    const sample = trafficSampleSchema.parse({
      model: 'digits',
      version: 1,
      width: 1,
      size: 1,
      seen: 1,
      rows: encodeSampleRows(Float32Array.of(5)),
    });
    primary.answered(b!.worker, { type: 'normserve:sample-answer', id: ask.id, sample });
    expect(a!.sent.at(-1)).toEqual({ type: 'normserve:sample-part', id: 7, worker: 2, sample });
    primary.retire(c!.worker);
    vi.advanceTimersByTime(5_000);
    expect(a!.sent.at(-1)).toEqual({
      type: 'normserve:sample-done',
      id: 7,
      asked: 3,
      left_out: [
        { worker: 3, reason: 'exited' },
        { worker: 4, reason: 'no answer within 5000 ms' },
      ],
    });
    // A late answer is not relayed.
    const before = a!.sent.length;
    primary.answered(d!.worker, { type: 'normserve:sample-answer', id: ask.id, sample });
    expect(a!.sent).toHaveLength(before);
  });
});
