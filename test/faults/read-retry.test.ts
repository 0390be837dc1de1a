/**
 * A version this process failed to read (FailedVersion.readFailed: an EMFILE, EIO, ESTALE — a
 * failure another process sharing the repository may not meet) is loaded again by the repository
 * scans (ModelRegistry.refresh), not kept FAILED until its files change or the process restarts:
 * until then it served an older version than every other replica (the seventeenth session's
 * "Left", h282 R2). The retries are counted in scans, the wait doubling (readRetryScan); SIGHUP
 * retries them all at once; a refresh that is not a scan (a publish's, under the record's lock)
 * retries none.
 */
import { rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PrimaryChannel } from '../../src/cli/cluster-messages.js';
import { answerRefreshRequests } from '../../src/cli/cluster-models.js';
import { rescanOnHangup } from '../../src/cli/rescan-on-hangup.js';
import { NormserveError } from '../../src/errors/index.js';
import { type ModelRegistry, readRetryScan, silentLog } from '../../src/service/index.js';
import { clearFsFaults, injectFsFaults } from '../helpers/fs-faults.mjs';
import { closeRegistries, openRegistry } from '../helpers/registry.js';
import { removeTempDirs } from '../helpers/temp-files.js';

afterEach(() => {
  clearFsFaults();
  vi.restoreAllMocks();
  closeRegistries();
  removeTempDirs();
});

/** A registry over digits with `extra` more versions published (2, 3…), none loaded yet. */
async function withVersions(extra: number) {
  const { root, registry } = await openRegistry();
  const { checkpoint } = registry.resolve('digits');
  for (let i = 0; i < extra; i++) await registry.repository.publishVersion(checkpoint);
  /** The repository's own loadVersion, for a test's mock to call. */
  const load = registry.repository.loadVersion.bind(registry.repository);
  const loads = vi.spyOn(registry.repository, 'loadVersion');
  const loadsOf = (v: number) => loads.mock.calls.filter(([, version]) => version === v).length;
  const state = (v: number) => registry.get('digits').versions.get(v)?.state;
  return { model: join(root, 'digits'), registry, load, loads, loadsOf, state };
}

/** The scan after this one reads the weights of `versions` with `code`, `times` times in all. */
function failReads(model: string, versions: number[], code: string, times?: number): void {
  injectFsFaults(
    versions.map((v) => ({
      op: 'open',
      path: join(model, String(v), 'model.safetensors'),
      code,
      ...(times !== undefined ? { times } : {}),
    })),
  );
}

describe('readRetryScan', () => {
  it('is the next scan after a failure, then 2, 4, 8… scans after each retry that failed, at most 1,024', () => {
    expect([0, 1, 2, 3].map((retries) => readRetryScan(10, retries))).toEqual([11, 12, 14, 18]);
    expect(readRetryScan(10, 10)).toBe(1034);
    expect(readRetryScan(10, 60), 'capped: not 2^60').toBe(1034);
  });
});

describe('a version this process failed to read, at the repository scans', () => {
  it('an EMFILE once: the next scan loads it again and serves it', async () => {
    const { model, registry, state } = await withVersions(1);
    failReads(model, [2], 'EMFILE', 1);
    await registry.refresh();
    expect(registry.get('digits').versions.get(2)).toMatchObject({
      state: 'FAILED',
      readFailed: true,
    });
    expect(registry.get('digits').active).toBe(1);
    await registry.refresh();
    expect(state(2)).toBe('AVAILABLE');
    expect(registry.get('digits').active, 'the version every other replica serves').toBe(2);
  });

  it('EIO throughout: loaded again 1, 2 and 4 scans after each failure, not at every poll', async () => {
    const { model, registry, loadsOf } = await withVersions(1);
    failReads(model, [2], 'EIO');
    const perScan: number[] = [];
    for (let scan = 0; scan < 8; scan++) {
      await registry.refresh();
      perScan.push(loadsOf(2));
    }
    // Failed at the first scan; retried at the 2nd, 4th and 8th.
    expect(perScan).toEqual([1, 2, 2, 3, 3, 3, 3, 4]);
    expect(registry.get('digits').versions.get(2)).toMatchObject({
      state: 'FAILED',
      readFailed: true,
      readRetries: 3,
    });
    expect(registry.get('digits').active).toBe(1);
  });

  it('one version a scan per model, the highest first', async () => {
    const { model, registry, state } = await withVersions(3); // 2, 3, 4
    failReads(model, [2, 3, 4], 'EMFILE', 1);
    await registry.refresh();
    expect([2, 3, 4].map(state)).toEqual(['FAILED', 'FAILED', 'FAILED']);
    const states = [];
    for (let scan = 0; scan < 3; scan++) {
      await registry.refresh();
      states.push([2, 3, 4].map(state));
    }
    expect(states).toEqual([
      ['FAILED', 'FAILED', 'AVAILABLE'],
      ['FAILED', 'AVAILABLE', 'AVAILABLE'],
      ['AVAILABLE', 'AVAILABLE', 'AVAILABLE'],
    ]);
    expect(registry.get('digits').active).toBe(4);
  });

  it('a version whose files turn out broken at its retry is that failure, not retried again', async () => {
    const { model, registry, load, loadsOf } = await withVersions(1);
    failReads(model, [2], 'EIO', 1);
    await registry.refresh();
    // Read at the retry, the weights turn out broken: a failure every process meets.
    const broken = vi.fn(() => {
      throw new NormserveError('SAFETENSORS_INVALID', 'digits/2/model.safetensors: truncated');
    });
    vi.spyOn(registry.repository, 'loadVersion').mockImplementation(async (name, version) =>
      version === 2 ? broken() : load(name, version),
    );
    await registry.refresh();
    expect(broken).toHaveBeenCalledTimes(1);
    const failed = registry.get('digits').versions.get(2);
    expect(failed).toMatchObject({ state: 'FAILED' });
    expect(failed).not.toHaveProperty('readFailed');
    for (let scan = 0; scan < 4; scan++) await registry.refresh();
    expect(broken, 'kept as its files’ own failure').toHaveBeenCalledTimes(1);
    expect(loadsOf(2), 'its failure, then the retry').toBe(2);
  });

  it('files changed when its retry is due: a fresh load, not a retry counted on', async () => {
    const { model, registry } = await withVersions(1);
    failReads(model, [2], 'EIO');
    await registry.refresh();
    await registry.refresh(); // retried once
    expect(registry.get('digits').versions.get(2)).toMatchObject({ readRetries: 1 });
    await registry.refresh();
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(model, '2', 'config.json'), later, later);
    await registry.refresh(); // due, and its files changed
    const failed = registry.get('digits').versions.get(2);
    expect(failed).toMatchObject({ state: 'FAILED', readFailed: true });
    expect(failed).not.toHaveProperty('readRetries');
  });

  it('a refresh that is not a scan (a publish’s, holding the record’s lock) loads none again', async () => {
    const { model, registry, loadsOf } = await withVersions(1);
    failReads(model, [2], 'EMFILE', 1);
    await registry.refresh();
    for (let i = 0; i < 3; i++) await registry.refreshModel('digits');
    expect(loadsOf(2)).toBe(1);
    expect(registry.get('digits').versions.get(2)?.state).toBe('FAILED');
  });
});

/**
 * `versions` failed to read once (default: 2 of versions 1 and 2); a scan is started (`retries`)
 * whose first retry load of `held` (default: the highest) waits until `release` (then loads, or
 * fails with EMFILE again when `failsAgain`); later loads go through. Resolves once that held
 * load has begun.
 */
async function scanWithHeldRetry(
  failsAgain: boolean,
  { versions = [2], retries = 'due' }: { versions?: number[]; retries?: 'due' | 'all' } = {},
) {
  const test = await withVersions(versions.length);
  const { model, registry, load } = test;
  const held = Math.max(...versions);
  failReads(model, versions, 'EMFILE', 1);
  await registry.refresh();
  let release = () => {};
  const releasing = new Promise<void>((r) => {
    release = r;
  });
  let retryStarted = () => {};
  const started = new Promise<void>((r) => {
    retryStarted = r;
  });
  let first = true;
  const calls: number[] = [];
  /** Loads of `v` from here on (this mock replaces withVersions's spy). */
  const loadsNow = (v: number) => calls.filter((c) => c === v).length;
  vi.spyOn(registry.repository, 'loadVersion').mockImplementation(async (name, version) => {
    calls.push(version);
    if (version === held && first) {
      first = false;
      retryStarted();
      await releasing;
      if (failsAgain)
        throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE' });
    }
    return load(name, version);
  });
  const scan = registry.refresh(retries);
  await started;
  return { ...test, scan, release, loadsNow };
}

describe('a publish while a scan retries a read', () => {
  it('does not wait for that retry holding the record’s lock: the retry is loaded outside the model’s refresh queue', async () => {
    const { registry, scan, release } = await scanWithHeldRetry(false);
    let published = false;
    const publish = registry.publish(registry.resolve('digits').checkpoint, false).then((r) => {
      published = true;
      return r;
    });
    // The publish's pin loads version 2 itself (servedEverywhere), names it, and ends.
    await vi.waitFor(() => expect(published).toBe(true), { timeout: 60_000 });
    expect(await publish).toMatchObject({ version: 3, activated: false });
    release();
    await scan;
    expect(registry.get('digits').active).toBe(2);
  });
});

describe('a retry that fails again while another path loaded the version', () => {
  it('does not replace the version that loaded: a publish’s pin reloads it meanwhile, then the held retry fails', async () => {
    const { registry, scan, release } = await scanWithHeldRetry(true);
    // The pin loads version 2 (servedEverywhere) and records it: it is served.
    expect(await registry.publish(registry.resolve('digits').checkpoint, false)).toMatchObject({
      version: 3,
    });
    expect(registry.get('digits').active).toBe(2);
    release();
    await scan;
    expect(registry.get('digits').versions.get(2)?.state).toBe('AVAILABLE');
    expect(registry.get('digits').active, 'still served: the late failure changed nothing').toBe(2);
  });
});

describe('two reads of the same failure at once (h294)', () => {
  it('a worker’s readAgain during a scan’s retry joins it: one load, one version served, none closed', async () => {
    const { registry, scan, release, loadsNow } = await scanWithHeldRetry(false);
    const joined = registry.readAgain('digits', 2);
    release();
    await Promise.all([scan, joined]);
    expect(loadsNow(2), 'the scan’s retry only').toBe(1);
    const served = registry.get('digits').versions.get(2);
    expect(served?.state).toBe('AVAILABLE');
    expect(registry.get('digits').active).toBe(2);
    // The same object at the next scan: not replaced by a second copy.
    await registry.refresh();
    expect(registry.get('digits').versions.get(2)).toBe(served);
  });

  it('a SIGHUP’s list made before a worker read a version again does not read it once more', async () => {
    const { registry, scan, release, loadsNow } = await scanWithHeldRetry(false, {
      versions: [2, 3],
      retries: 'all',
    });
    // While the SIGHUP's scan holds its retry of 3, a worker reads 2 again.
    await registry.readAgain('digits', 2);
    const served = registry.get('digits').versions.get(2);
    expect(served?.state).toBe('AVAILABLE');
    release();
    await scan;
    expect(loadsNow(2), 'readAgain’s only').toBe(1);
    expect(registry.get('digits').versions.get(2)).toBe(served);
  });
});

describe('a publish whose version is deleted before its refresh lists the versions', () => {
  it('releases the engine it loaded (h294 3)', async () => {
    const { model, registry } = await withVersions(0);
    const refreshModel = registry.refreshModel.bind(registry);
    let close: ReturnType<typeof vi.fn> | undefined;
    vi.spyOn(registry, 'refreshModel').mockImplementation(async (name, preloaded, ...rest) => {
      if (preloaded?.version === 2 && preloaded.state === 'AVAILABLE' && close === undefined) {
        close = vi.spyOn(preloaded.compiled, 'close') as unknown as ReturnType<typeof vi.fn>;
        // Another replica's retention job deletes it, by hand here (no tombstone needed).
        rmSync(join(model, '2'), { recursive: true });
      }
      return refreshModel(name, preloaded, ...rest);
    });
    expect(await registry.publish(registry.resolve('digits').checkpoint, false)).toMatchObject({
      version: 2,
    });
    expect(registry.get('digits').versions.has(2)).toBe(false);
    expect(close).toHaveBeenCalled();
  });
});

describe("refresh('all'): SIGHUP, an operator's reload", () => {
  it('loads again at once a version whose retry is not due yet', async () => {
    const { model, registry, loadsOf } = await withVersions(1);
    failReads(model, [2], 'EIO');
    await registry.refresh(); // failed
    await registry.refresh(); // retried, failed: the next retry two scans on
    expect(loadsOf(2)).toBe(2);
    clearFsFaults(); // the storage is mended
    await registry.refresh('all');
    expect(loadsOf(2)).toBe(3);
    expect(registry.get('digits').active).toBe(2);
  });

  it('loads the highest four of a model, not all of them', async () => {
    const { model, registry, loadsOf } = await withVersions(6); // 2..7
    const all = [2, 3, 4, 5, 6, 7];
    failReads(model, all, 'EIO');
    await registry.refresh();
    expect(all.map(loadsOf)).toEqual([1, 1, 1, 1, 1, 1]);
    await registry.refresh('all');
    expect(all.map(loadsOf)).toEqual([1, 1, 2, 2, 2, 2]);
  });

  /** Version 2 failed to read three times here: its next retry four scans on. */
  async function failedThrice() {
    const test = await withVersions(1);
    failReads(test.model, [2], 'EIO');
    for (let scan = 0; scan < 4; scan++) await test.registry.refresh(); // fails, retried at 2 and 4
    clearFsFaults();
    expect(test.loadsOf(2)).toBe(3);
    expect(test.registry.get('digits').versions.get(2)).toMatchObject({ readRetries: 2 });
    return test;
  }

  it('asked while a scan that retries only the due ones runs, gets a scan of its own after it', async () => {
    const { registry, loadsOf } = await failedThrice();
    const before = registry.scans;
    const due = registry.refresh();
    const all = registry.refresh('all');
    const shared = registry.refresh('all');
    await Promise.all([due, all, shared]);
    expect(registry.scans - before, 'the due scan, then one retrying all').toBe(2);
    expect(loadsOf(2), 'not due at either scan: loaded by the second').toBe(4);
    expect(registry.get('digits').active).toBe(2);
  });

  it('asked while a scan that fails runs, still gets a scan of its own', async () => {
    const { registry, loadsOf } = await failedThrice();
    const list = registry.repository.listModels.bind(registry.repository);
    vi.spyOn(registry.repository, 'listModels')
      .mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, scandir'), { code: 'EIO' }))
      .mockImplementation(list);
    const due = registry.refresh();
    const all = registry.refresh('all');
    await expect(due).rejects.toThrow(/EIO/);
    await all;
    expect(loadsOf(2)).toBe(4);
    expect(registry.get('digits').active).toBe(2);
  });

  it('is what SIGHUP asks for (rescanOnHangup)', async () => {
    const refresh = vi.fn((_retries?: string) => Promise.resolve());
    const stop = rescanOnHangup(
      { refresh } as unknown as Pick<ModelRegistry, 'refresh'>,
      silentLog,
    );
    try {
      process.emit('SIGHUP', 'SIGHUP');
      expect(refresh).toHaveBeenCalledWith('all');
    } finally {
      stop();
    }
  });
});

describe('a cluster worker told that another serves a version it failed to read', () => {
  it('reads it again at once (readAgain), not when its retry is due', async () => {
    const { model, registry } = await withVersions(1);
    failReads(model, [2], 'EIO');
    await registry.refresh();
    await registry.refresh(); // retried: the next retry two scans on
    clearFsFaults();
    const sent: unknown[] = [];
    const channel = { send: (m: unknown) => sent.push(m) } as unknown as PrimaryChannel;
    answerRefreshRequests(channel, registry, silentLog)(7, 'digits', 2);
    await vi.waitFor(() => expect(sent).toHaveLength(1), { timeout: 60_000 });
    expect(sent[0], 'no problem: it serves what the writer serves').toEqual({
      type: 'normserve:model-refreshed',
      id: 7,
    });
    expect(registry.get('digits').active).toBe(2);
  });

  it('leaves a version that failed for its files’ own reasons as it is', async () => {
    const { model, registry, loadsOf } = await withVersions(1);
    writeFileSync(join(model, '2', 'model.safetensors'), 'not a safetensors file');
    await registry.refresh();
    expect(await registry.readAgain('digits', 2)).toBeUndefined();
    expect(loadsOf(2)).toBe(1);
  });
});
