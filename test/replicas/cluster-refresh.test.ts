/**
 * The parts of "one server, one served version" (src/cli/cluster-models.ts) in one process: the
 * registry awaits its onWrite hook after each of its own writes (and survives a failing one), the
 * primary's relay (fake workers, fake timers) and the worker's two halves (a fake channel).
 * one-server-one-version.test.ts runs the whole with real processes.
 */
import type { Worker } from 'node:cluster';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { PrimaryChannel } from '../../src/cli/cluster-messages.js';
import { fromPrimarySchema, fromWorkerSchema } from '../../src/cli/cluster-messages.js';
import {
  announceModelWrites,
  answerRefreshRequests,
  ClusterModelsPrimary,
  scanAndAnnounce,
} from '../../src/cli/cluster-models.js';
import { type Log, ModelRegistry } from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);
afterEach(() => {
  vi.useRealTimers();
});

/** A repository whose digits model has versions 1 and 2 (the same weights), no record. */
function twoVersions(): string {
  const root = makeTempDir('cluster-refresh');
  copyBundledModel('digits', root);
  copyBundledModel('digits', root, { version: 2 });
  return root;
}

function recordingLog() {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const log: Log = {
    info: () => undefined,
    warn: (obj, msg) => lines.push({ level: 'warn', obj, ...(msg ? { msg } : {}) }),
    error: (obj, msg) => lines.push({ level: 'error', obj, ...(msg ? { msg } : {}) }),
  };
  return { log, lines };
}

describe("the registry's onWrite hook", () => {
  it('is awaited by activate and deleteVersion before they return, after this process serves the change', async () => {
    const root = twoVersions();
    const calls: { name: string; active: number | undefined }[] = [];
    let release: () => void = () => undefined;
    const registry: ModelRegistry = new ModelRegistry(root, {
      maxBatchSize: 8,
      engine: TEST_ENGINE,
      onWrite: (name) => {
        calls.push({ name, active: registry.get(name).active });
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    await registry.refresh();
    expect(registry.get('digits').active).toBe(2);
    expect(calls).toEqual([]); // scans are no writes

    let returned = false;
    const activation = registry.activate('digits', 1).then((s) => {
      returned = true;
      return s;
    });
    await vi.waitFor(() => expect(calls).toHaveLength(1));
    expect(calls[0]).toEqual({ name: 'digits', active: 1 });
    await new Promise((r) => setImmediate(r));
    expect(returned, 'activate waits for the other workers').toBe(false);
    release();
    expect((await activation).snapshot.active).toBe(1);

    const deletion = registry.deleteVersion('digits', 2);
    await vi.waitFor(() => expect(calls).toHaveLength(2));
    expect(registry.get('digits').versions.has(2)).toBe(false);
    release();
    await deletion;
    registry.close();
  });

  it('that fails is logged, and the write still returns', async () => {
    const { log, lines } = recordingLog();
    const registry = new ModelRegistry(twoVersions(), {
      maxBatchSize: 8,
      engine: TEST_ENGINE,
      log,
      onWrite: () => Promise.reject(new Error('primary gone')),
    });
    await registry.refresh();
    expect((await registry.activate('digits', 1)).snapshot.active).toBe(1);
    expect(lines).toMatchObject([{ level: 'error', obj: { model: 'digits' } }]);
    registry.close();
  });
});

describe("the primary's relay", () => {
  function fakeWorker(id: number, alive = true) {
    const sent: unknown[] = [];
    const worker = {
      id,
      isConnected: () => alive,
      isDead: () => !alive,
      send: (m: unknown) => {
        sent.push(fromPrimarySchema.parse(m));
        return true;
      },
    } as unknown as Worker;
    return { worker, sent };
  }
  const types = (sent: unknown[]) => sent.map((m) => (m as { type: string }).type);

  it('asks every other worker, waits for the ready ones, answers the writer once they refreshed', () => {
    const [a, b, c, starting] = [1, 2, 3, 4].map((id) => fakeWorker(id));
    const primary = new ClusterModelsPrimary(5_000, () =>
      [a!, b!, c!, starting!].map((w) => w.worker),
    );
    for (const w of [a!, b!, c!]) primary.add(w.worker);
    const written = fromWorkerSchema.parse({ type: 'normserve:model-written', id: 9, model: 'm' });
    primary.written(
      a!.worker,
      written as Extract<typeof written, { type: 'normserve:model-written' }>,
    );
    expect(types(a!.sent)).toEqual([]);
    const ask = b!.sent[0] as { type: string; id: number; model: string };
    expect(ask).toMatchObject({ type: 'normserve:refresh-model', model: 'm' });
    expect(c!.sent).toEqual([ask]);
    // A worker still starting is told (its first scan may predate the write), not waited for.
    expect(starting!.sent).toEqual([ask]);
    primary.refreshed(b!.worker, { type: 'normserve:model-refreshed', id: ask.id });
    primary.refreshed(starting!.worker, { type: 'normserve:model-refreshed', id: ask.id });
    expect(a!.sent).toEqual([]);
    primary.refreshed(c!.worker, { type: 'normserve:model-refreshed', id: ask.id });
    expect(a!.sent).toEqual([
      { type: 'normserve:models-refreshed', id: 9, asked: 2, left_out: [] },
    ]);
  });

  it('leaves out the exited and the silent, bounded by its timeout; answers at once when alone', () => {
    vi.useFakeTimers();
    const [a, b, c, d] = [1, 2, 3, 4].map((id) => fakeWorker(id));
    const workers = [a!, b!, c!, d!];
    const primary = new ClusterModelsPrimary(5_000, () => workers.map((w) => w.worker));
    for (const w of workers) primary.add(w.worker);
    primary.written(a!.worker, { type: 'normserve:model-written', id: 3, model: 'm' });
    const ask = b!.sent[0] as { id: number };
    primary.refreshed(b!.worker, { type: 'normserve:model-refreshed', id: ask.id });
    primary.retire(c!.worker);
    vi.advanceTimersByTime(4_999);
    expect(a!.sent).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(a!.sent).toEqual([
      {
        type: 'normserve:models-refreshed',
        id: 3,
        asked: 3,
        left_out: [
          { worker: 3, reason: 'exited' },
          { worker: 4, reason: 'no answer within 5000 ms' },
        ],
      },
    ]);
    // A late confirmation changes nothing.
    primary.refreshed(d!.worker, { type: 'normserve:model-refreshed', id: ask.id });
    expect(a!.sent).toHaveLength(1);

    const alone = new ClusterModelsPrimary(5_000, () => [a!.worker]);
    alone.add(a!.worker);
    alone.written(a!.worker, { type: 'normserve:model-written', id: 4, model: 'm' });
    expect(a!.sent.at(-1)).toEqual({
      type: 'normserve:models-refreshed',
      id: 4,
      asked: 0,
      left_out: [],
    });
  });

  it('answers no one when the writer exits first', () => {
    vi.useFakeTimers();
    const [a, b] = [1, 2].map((id) => fakeWorker(id));
    const primary = new ClusterModelsPrimary(5_000, () => [a!.worker, b!.worker]);
    primary.add(a!.worker);
    primary.add(b!.worker);
    primary.written(a!.worker, { type: 'normserve:model-written', id: 0, model: 'm' });
    primary.retire(a!.worker);
    vi.advanceTimersByTime(10_000);
    expect(a!.sent).toEqual([]);
  });
  it("the primary counts a worker's problem as left out", () => {
    const workers = [fakeWorker(1), fakeWorker(2)];
    const primary = new ClusterModelsPrimary(60_000, () => workers.map((w) => w.worker));
    for (const w of workers) primary.add(w.worker);
    primary.written(workers[0]!.worker, {
      type: 'normserve:model-written',
      id: 7,
      model: 'm',
      active: 2,
    });
    const ask = workers[1]!.sent[0] as { id: number; active: number };
    expect(ask.active).toBe(2);
    primary.refreshed(workers[1]!.worker, {
      type: 'normserve:model-refreshed',
      id: ask.id,
      problem: 'serves version 1, not 2',
    });
    expect(workers[0]!.sent).toEqual([
      {
        type: 'normserve:models-refreshed',
        id: 7,
        asked: 1,
        left_out: [{ worker: 2, reason: 'serves version 1, not 2' }],
      },
    ]);
  });
});

describe("a worker's halves", () => {
  it('refreshes the model asked for, then confirms', async () => {
    const root = twoVersions();
    const registry = new ModelRegistry(root, { maxBatchSize: 8, engine: TEST_ENGINE });
    await registry.refresh();
    expect(registry.get('digits').active).toBe(2);
    // Another process rolls back (writes the record).
    const other = new ModelRegistry(root, { maxBatchSize: 8, engine: TEST_ENGINE });
    await other.refresh();
    await other.activate('digits', 1);
    other.close();
    const sent: unknown[] = [];
    const channel = { send: (m: unknown) => sent.push(m) } as unknown as PrimaryChannel;
    answerRefreshRequests(channel, registry, recordingLog().log)(5, 'digits', 1);
    await vi.waitFor(() => expect(sent).toEqual([{ type: 'normserve:model-refreshed', id: 5 }]));
    expect(registry.get('digits').active).toBe(1);
    // Asked to serve a version it does not (it did not load here, say): it says so.
    answerRefreshRequests(channel, registry, recordingLog().log)(6, 'digits', 2);
    await vi.waitFor(() =>
      expect(sent[1]).toEqual({
        type: 'normserve:model-refreshed',
        id: 6,
        problem: 'serves version 1, not 2',
      }),
    );
    registry.close();
  });

  it('logs who was left out, and a primary that did not answer, never throwing', async () => {
    const { log, lines } = recordingLog();
    const answers = [
      Promise.resolve({
        type: 'normserve:models-refreshed',
        id: 0,
        asked: 1,
        left_out: [{ worker: 2, reason: 'no answer within 5000 ms' }],
      }),
      Promise.reject(new Error('the cluster primary did not answer')),
    ];
    const asked: unknown[] = [];
    const channel = {
      request: (m: unknown) => {
        asked.push(m);
        return answers.shift();
      },
    } as unknown as PrimaryChannel;
    const announce = announceModelWrites(channel, log);
    await announce('digits', 2);
    await announce('digits', null);
    expect(asked).toEqual([
      { type: 'normserve:model-written', model: 'digits', active: 2 },
      { type: 'normserve:model-written', model: 'digits', active: null },
    ]);
    expect(lines.map((l) => l.level)).toEqual(['warn', 'error']);
  });
});

describe("a cluster worker's repository scan (scanAndAnnounce; ops review of 2026-12-04, finding 2)", () => {
  it('announces a model whose active version the scan changed, as its own writes are, and nothing else', async () => {
    const root = twoVersions();
    const registry = new ModelRegistry(root, { maxBatchSize: 8, engine: TEST_ENGINE });
    const announced: [string, number | null][] = [];
    const announce = async (model: string, active: number | null) => {
      announced.push([model, active]);
    };
    try {
      // The first scan finds the model: no change to announce.
      expect(await scanAndAnnounce(registry, announce)).toEqual([]);
      expect(registry.get('digits').active).toBe(2);
      expect(await scanAndAnnounce(registry, announce)).toEqual([]);
      // Another replica activates version 1 (its own registry on the same repository).
      const replica = new ModelRegistry(root, { maxBatchSize: 8, engine: TEST_ENGINE });
      await replica.refresh();
      await replica.activate('digits', 1);
      replica.close();
      expect(await scanAndAnnounce(registry, announce)).toEqual(['digits']);
      expect(announced).toEqual([['digits', 1]]);
      expect(await scanAndAnnounce(registry, announce)).toEqual([]);
      expect(announced).toHaveLength(1);
    } finally {
      registry.close();
    }
  });
});
