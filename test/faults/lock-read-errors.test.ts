/**
 * A lock (or claim) file that this process fails to open or read is busy, never "not a lock".
 * Issue (review): an open of the lock path that failed with EMFILE (descriptors exhausted on a busy
 * server; ESTALE on NFS, EIO, EACCES alike) made a live, freshly heartbeated lock look like a file
 * that is not a lock, judged stale; read again under its claim with the same failure, its key (its
 * inode) matched and it was unlinked: a second process acquired the lock while its holder held it.
 * The same path let the start-up cleanup delete a live claim. A lock another user's process wrote
 * unreadable to this one (umask 077: EACCES every time) is waited for while its heartbeat is fresh,
 * and then refused with an error naming the file and the permission problem, never broken.
 * Errors are injected (test/helpers/fs-faults.mjs), so the tests hold when run as root too.
 */
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { acquireModelLock, type HeldLock, removeStaleClaims } from '../../src/repository/index.js';
import { clearFsFaults, faultHits, injectFsFaults } from '../helpers/fs-faults.mjs';

const LOCK = '.demo.lock';
const HOUR_MS = 3_600_000;
const dirs: string[] = [];
let dir: string;
const holders: HeldLock[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'normserve-lock-read-'));
  dirs.push(dir);
});
afterEach(async () => {
  clearFsFaults();
  for (const holder of holders.splice(0)) await holder.release();
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function hold(owner: string): Promise<HeldLock> {
  const lock = await acquireModelLock(dir, owner, { file: LOCK });
  if ('heldBy' in lock) throw new Error(`${owner} did not get the lock`);
  holders.push(lock);
  return lock;
}
const ownerOnDisk = () =>
  (JSON.parse(readFileSync(join(dir, LOCK), 'utf8')) as { owner: string }).owner;

describe('a lock file whose open fails', () => {
  it('fails twice with EMFILE (the reviewer’s case): the second acquisition is refused, held by the holder, whose fence still passes', async () => {
    const a = await hold('job-A');
    expect(await a.heartbeat()).toBe(true);
    injectFsFaults([{ op: 'open', suffix: LOCK, code: 'EMFILE', times: 2 }]);
    const b = await acquireModelLock(dir, 'job-B', { file: LOCK });
    expect(faultHits()).toEqual([2]);
    expect('heldBy' in b && b.heldBy.owner).toBe('job-A');
    await expect(a.assertHeld()).resolves.toBeUndefined();
    expect(ownerOnDisk()).toBe('job-A');
  });

  it('fails every time (EIO, ESTALE): busy, nothing broken; the holder’s fence refuses its write meanwhile but the lock is not lost', async () => {
    const a = await hold('job-A');
    injectFsFaults([{ op: 'open', suffix: LOCK, code: 'EIO' }]);
    const b = await acquireModelLock(dir, 'job-B', { file: LOCK });
    expect('heldBy' in b).toBe(true);
    // Not read: the write is not made (the error is the read's, not LOCK_LOST)...
    await expect(a.assertHeld()).rejects.toMatchObject({ code: 'EIO' });
    clearFsFaults();
    // ...and once it reads again, the lock is still its own.
    expect(ownerOnDisk()).toBe('job-A');
    await expect(a.assertHeld()).resolves.toBeUndefined();
    expect(await a.heartbeat()).toBe(true);
  });

  for (const { code, cause, why } of [
    { code: 'EIO', cause: '(EIO)', why: 'Check the storage' },
    { code: 'EACCES', cause: 'EACCES: permission denied', why: 'umask' },
  ]) {
    it(`fails with ${code} every time: waited for while its heartbeat is fresh, then refused with an error naming the file and the cause (not a 409 "retry later" forever), never broken`, async () => {
      await hold('job-A');
      injectFsFaults([{ op: 'open', suffix: LOCK, code }]);
      const fresh = await acquireModelLock(dir, 'job-B', { file: LOCK });
      expect('heldBy' in fresh).toBe(true);
      // Its holder stopped an hour ago: a readable lock would be broken now; this one cannot be
      // judged.
      const past = new Date(Date.now() - HOUR_MS);
      utimesSync(join(dir, LOCK), past, past);
      const refused = await acquireModelLock(dir, 'job-B', { file: LOCK }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isNormserveError(refused) && refused.code).toBe('STORAGE_UNAVAILABLE');
      expect((refused as Error).message).toContain(`${basename(dir)}/${LOCK} cannot be read`);
      expect((refused as Error).message).toContain(cause);
      expect((refused as Error).message).toContain(why);
      clearFsFaults();
      expect(ownerOnDisk()).toBe('job-A');
    });
  }
});

describe('start-up cleanup', () => {
  it('leaves a live claim it fails to open (EMFILE) alone', async () => {
    const claim = join(dir, `${LOCK}.claim-${'a'.repeat(24)}`);
    // A live claim: this host, a live process (this one's parent), a fresh heartbeat.
    writeFileSync(
      claim,
      JSON.stringify({
        owner: 'claimant',
        host: hostname(),
        pid: process.ppid,
        acquired_at: new Date().toISOString(),
      }),
    );
    injectFsFaults([{ op: 'open', suffix: claim.slice(-30), code: 'EMFILE' }]);
    expect(await removeStaleClaims(dir)).toEqual([]);
    expect(faultHits()[0]).toBeGreaterThan(0);
    clearFsFaults();
    expect(JSON.parse(readFileSync(claim, 'utf8'))).toMatchObject({ owner: 'claimant' });
  });
});

describe('a lock file naming a pid that is no process', () => {
  // kill(-1, 0) succeeds for root (it reaches every process), so such an owner looked alive and
  // its fresh lock was waited for as held; pid 0 (the process group) alike. Not a lock.
  it.each([-1, 0])('pid %i, fresh, on this host: not a lock, taken at once', async (pid) => {
    writeFileSync(
      join(dir, LOCK),
      JSON.stringify({
        owner: 'job-ghost',
        host: hostname(),
        pid,
        acquired_at: new Date().toISOString(),
      }),
    );
    const lock = await acquireModelLock(dir, 'job-A', { file: LOCK });
    expect('heldBy' in lock).toBe(false);
    if (!('heldBy' in lock)) holders.push(lock);
    expect(ownerOnDisk()).toBe('job-A');
  });
});
