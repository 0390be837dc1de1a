/**
 * A version this process failed to read (FailedVersion.readFailed: an EMFILE, EIO, ESTALE — a
 * failure another process sharing the repository may not meet) is loaded again by the repository
 * scans (ModelRegistry.refresh), not kept FAILED until its files change or the process restarts:
 * until then it served an older version than every other replica (the seventeenth session's
 * "Left", h282 R2). The retries are counted in scans, the wait doubling (readRetryScan); SIGHUP
 * retries them all at once; a refresh that is not a scan (a publish's, under the record's lock)
 * retries none.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
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
  const loads = vi.spyOn(registry.repository, 'loadVersion');
  const loadsOf = (v: number) => loads.mock.calls.filter(([, version]) => version === v).length;
  const state = (v: number) => registry.get('digits').versions.get(v)?.state;
  return { model: join(root, 'digits'), registry, loads, loadsOf, state };
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
    const { model, registry, loadsOf } = await withVersions(1);
    failReads(model, [2], 'EIO', 1);
    await registry.refresh();
    // Read at the retry, the weights turn out broken: a failure every process meets.
    const broken = vi.fn(() => {
      throw new NormserveError('SAFETENSORS_INVALID', 'digits/2/model.safetensors: truncated');
    });
    const load = registry.repository.loadVersion.bind(registry.repository);
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

  it('a refresh that is not a scan (a publish’s, holding the record’s lock) loads none again', async () => {
    const { model, registry, loadsOf } = await withVersions(1);
    failReads(model, [2], 'EMFILE', 1);
    await registry.refresh();
    for (let i = 0; i < 3; i++) await registry.refreshModel('digits');
    expect(loadsOf(2)).toBe(1);
    expect(registry.get('digits').versions.get(2)?.state).toBe('FAILED');
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

  it('asked while a scan that retries only the due ones runs, gets a scan of its own after it', async () => {
    const { model, registry, loadsOf } = await withVersions(1);
    failReads(model, [2], 'EIO');
    await registry.refresh();
    await registry.refresh(); // the next retry two scans on
    clearFsFaults();
    const before = registry.scans;
    const due = registry.refresh();
    const all = registry.refresh('all');
    const shared = registry.refresh('all');
    await Promise.all([due, all, shared]);
    expect(registry.scans - before, 'the due scan, then one retrying all').toBe(2);
    expect(loadsOf(2)).toBe(3);
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
