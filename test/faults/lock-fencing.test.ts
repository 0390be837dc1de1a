/**
 * Fencing: a lock holder paused past its lease (SIGSTOP, a suspended VM, a stalled event loop)
 * whose lock another process broke as stale writes nothing when it resumes. Issue: a holder read
 * the active record inside the lock, was stopped for 36 s, an operator's rollback broke the lock
 * and wrote version 3, and the holder, resumed, wrote 2 over it; a recalibration paused the same
 * way published a version and rewrote its job, already settled JOB_ABANDONED, as succeeded.
 * The pause is simulated in-process: at the point where the holder would stop, its lock's
 * heartbeat is set an hour back (what a stopped holder's lock looks like) and another writer
 * takes the lock, as another process would.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import * as fsPromises from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { ACTIVE_RECORD_LOCK_FILE } from '../../src/repository/active-record-lock.js';
import { acquireModelLock, type HeldLock, ModelRepository } from '../../src/repository/index.js';
import { JobRegistry, ModelRegistry, RecalibrationService } from '../../src/service/index.js';
import { makeDigitsVersionsRepository } from '../helpers/app.js';
import { digitsTestRows, nightShift, packRows } from '../helpers/digits.js';

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return { ...actual, open: vi.fn(actual.open) };
});

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
});

let root: string;
let modelDir: string;
beforeEach(() => {
  root = makeDigitsVersionsRepository();
  roots.push(root);
  modelDir = join(root, 'digits');
  writeFileSync(join(modelDir, 'active-version.json'), '{"version":1}\n');
});

const HOUR_MS = 3_600_000;
/** What a holder that stopped an hour ago leaves: its lock's heartbeat (mtime) an hour old. */
function stopHeartbeat(lockFile: string): void {
  const past = new Date(Date.now() - HOUR_MS);
  utimesSync(join(modelDir, lockFile), past, past);
}
const recordVersion = () =>
  (JSON.parse(readFileSync(join(modelDir, 'active-version.json'), 'utf8')) as { version: number })
    .version;
const codeOf = (e: unknown) =>
  isNormserveError(e) ? e.code : ((e as NodeJS.ErrnoException).code ?? String(e));
const held = (lock: HeldLock | { heldBy: unknown }): HeldLock => {
  if ('heldBy' in lock) throw new Error('the lock is held by another');
  return lock;
};

describe('the active-version record', () => {
  it('a conditional write paused between its read and its write (its lock broken, a rollback written meanwhile) writes nothing: LOCK_LOST, the rollback stands', async () => {
    const holder = new ModelRepository(root);
    const operator = new ModelRepository(root);
    const listVersions = holder.listVersions.bind(holder);
    let rollback: Awaited<ReturnType<ModelRepository['writeActive']>> | undefined;
    // Its check that the version is there, after it read the record and decided.
    vi.spyOn(holder, 'listVersions').mockImplementationOnce(async (name) => {
      const versions = await listVersions(name);
      // Paused here, holding the lock, past its lease: another process breaks it and rolls back.
      stopHeartbeat(ACTIVE_RECORD_LOCK_FILE);
      rollback = await operator.writeActive('digits', 3, 'operator rollback');
      return versions;
    });
    const outcome = await holder.writeActiveIf('digits', 2, 1, 'recalibrated').catch(codeOf);
    expect(outcome).toBe('LOCK_LOST');
    expect(rollback?.replaced).toBe(1);
    expect(recordVersion()).toBe(3);
    // The holder's temporary record was removed with the failed write; the lock is free.
    expect(readdirSync(modelDir).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('the same write not paused is made (the fence passes while the lock is its own)', async () => {
    const outcome = await new ModelRepository(root).writeActiveIf('digits', 2, 1, 'recalibrated');
    expect(outcome.written).toBe(true);
    expect(recordVersion()).toBe(2);
  });
});

describe('a held lock', () => {
  it('whose lease ran out by its own clock fails the fencing check, though no one broke it', async () => {
    let now = 1_000_000;
    const lock = held(
      await acquireModelLock(modelDir, randomUUID(), { staleMs: 30_000, now: () => now }),
    );
    await expect(lock.assertHeld()).resolves.toBeUndefined();
    now += 14_000;
    await expect(lock.assertHeld()).resolves.toBeUndefined();
    // 16 s since its last heartbeat, more than half of staleMs: others may break it before a
    // write that follows the check lands.
    now += 2_000;
    expect(await lock.assertHeld().catch(codeOf)).toBe('LOCK_LOST');
    // A heartbeat that finds the file still its own renews the lease.
    expect(await lock.heartbeat()).toBe(true);
    await expect(lock.assertHeld()).resolves.toBeUndefined();
    await lock.release();
  });

  it('broken as stale is never renewed by its former holder’s heartbeat, nor removed by its release', async () => {
    const lockPath = join(modelDir, '.recalibration.lock');
    const first = held(await acquireModelLock(modelDir, randomUUID()));
    stopHeartbeat('.recalibration.lock');
    const second = held(await acquireModelLock(modelDir, randomUUID()));
    const secondContent = readFileSync(lockPath, 'utf8');
    // The successor's heartbeat is 10 s old: a renewal by the former holder would show.
    const tenSecondsAgo = new Date(Date.now() - 10_000);
    utimesSync(lockPath, tenSecondsAgo, tenSecondsAgo);
    expect(await first.heartbeat()).toBe(false);
    // (mtimes are read back with sub-millisecond rounding)
    expect(Math.abs(statSync(lockPath).mtimeMs - tenSecondsAgo.getTime())).toBeLessThan(1);
    expect(await first.assertHeld().catch(codeOf)).toBe('LOCK_LOST');
    await first.release();
    expect(readFileSync(lockPath, 'utf8')).toBe(secondContent);
    await expect(second.assertHeld()).resolves.toBeUndefined();
    expect(await second.heartbeat()).toBe(true);
    expect(statSync(lockPath).mtimeMs).toBeGreaterThan(tenSecondsAgo.getTime() + 1_000);
    await second.release();
    expect(readdirSync(modelDir).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('a recalibration', () => {
  it('paused past its lease before publishing publishes nothing and activates nothing: its job fails with LOCK_LOST', async () => {
    const registry = new ModelRegistry(root, { maxBatchSize: 64 });
    await registry.refresh();
    const service = new RecalibrationService(registry, new JobRegistry(), {
      maxSamples: Number.MAX_SAFE_INTEGER,
    });
    const publish = registry.publish.bind(registry);
    let jobId = '';
    vi.spyOn(registry, 'publish').mockImplementation(async (...args) => {
      jobId = (
        JSON.parse(readFileSync(join(modelDir, '.recalibration.lock'), 'utf8')) as {
          owner: string;
        }
      ).owner;
      // Paused here past the lease: another replica breaks the model's lock and rolls back.
      stopHeartbeat('.recalibration.lock');
      const other = held(await acquireModelLock(modelDir, randomUUID()));
      await new ModelRepository(root).writeActive('digits', 3, 'operator rollback');
      await other.release();
      return publish(...args);
    });
    const rows = packRows(nightShift(digitsTestRows().x).slice(0, 40));
    const failure = await service
      .recalibrateRows({ model: 'digits', mode: 'exact', activate: true }, rows)
      .catch((e: unknown) => e);
    expect(codeOf(failure)).toBe('LOCK_LOST');
    expect(recordVersion()).toBe(3);
    expect(
      readdirSync(modelDir)
        .filter((n) => /^\d+$/.test(n))
        .sort(),
    ).toEqual(['1', '2', '3']);
    const job = await service.jobs.get(jobId);
    expect({ state: job?.state, code: job?.error?.code }).toEqual({
      state: 'failed',
      code: 'LOCK_LOST',
    });
    await service.close();
  });
});

describe('the temporary lock file', () => {
  it('is removed when writing it fails (one was left per failed acquisition)', async () => {
    const { open } = fsPromises as unknown as { open: ReturnType<typeof vi.fn> };
    open.mockImplementationOnce(async (...args: unknown[]) => {
      const actual = await vi.importActual<typeof import('node:fs/promises')>('node:fs/promises');
      const handle = await actual.open(...(args as Parameters<typeof actual.open>));
      handle.sync = async () => {
        throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      };
      return handle;
    });
    const failure = await acquireModelLock(modelDir, randomUUID()).catch(codeOf);
    expect(failure).toBe('EIO');
    expect(readdirSync(modelDir).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
