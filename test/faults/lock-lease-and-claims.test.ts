/**
 * Two edges of the lock protocol (model-lock.ts):
 * - A holder's lease starts before its lock (or claim) file is written. Issue (review): it started
 *   after the link, while the file's mtime, what others judge it by, is from before the fsync: an
 *   fsync of 30 s made a lock stale on arrival whose holder believed in a 15 s lease.
 * - A chain of claims left by processes that died holding them, deeper than a running process
 *   breaks (MAX_CLAIM_DEPTH), ends. Issue (review): after four nested crashes of claim holders
 *   nothing broke the last claim, and a release retried forever. Now the release gives up with
 *   REPOSITORY_ERROR after twice the stale time, and start-up cleanup breaks the chain.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import {
  acquireModelLock,
  removeStaleClaims,
  writeUnderClaim,
} from '../../src/repository/index.js';
import { clearFsFaults, faultHits, injectFsFaults } from '../helpers/fs-faults.mjs';

const LOCK = '.demo.lock';
const HOUR_MS = 3_600_000;
const dirs: string[] = [];
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'normserve-lock-lease-'));
  dirs.push(dir);
});
afterEach(clearFsFaults);
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const codeOf = (e: unknown) =>
  isNormserveError(e) ? e.code : ((e as NodeJS.ErrnoException).code ?? String(e));

/** An fsync of the temporary lock or claim file (`<tmp>-lock`) longer than the lease. */
const STALE_MS = 4_000;
const SLOW_FSYNC_MS = 2_500; // more than the lease (STALE_MS / 2), less than STALE_MS

describe('the lease', () => {
  it('of a lock starts before its file is written: an fsync longer than the lease leaves the holder no lease, until a heartbeat renews it', async () => {
    injectFsFaults([{ op: 'fsync', suffix: '-lock', delayMs: SLOW_FSYNC_MS, times: 1 }]);
    const lock = await acquireModelLock(dir, 'job-A', { file: LOCK, staleMs: STALE_MS });
    if ('heldBy' in lock) throw new Error('not acquired');
    expect(faultHits()).toEqual([1]);
    try {
      // The file's mtime is from before the fsync: others see it SLOW_FSYNC_MS old already.
      await expect(lock.assertHeld()).rejects.toMatchObject({ code: 'LOCK_LOST' });
      expect(await lock.heartbeat()).toBe(true);
      await expect(lock.assertHeld()).resolves.toBeUndefined();
    } finally {
      await lock.release();
    }
  });

  it('of a claim starts before its file is written: a write under a claim whose fsync outlasted the lease is not made', async () => {
    injectFsFaults([{ op: 'fsync', suffix: '-lock', delayMs: SLOW_FSYNC_MS, times: 1 }]);
    const record = join(dir, 'job.json');
    let written = false;
    const outcome = writeUnderClaim(
      record,
      async (fence) => {
        await fence();
        written = true;
      },
      { staleMs: STALE_MS },
    );
    await expect(outcome).rejects.toMatchObject({ code: 'LOCK_LOST' });
    expect(written).toBe(false);
  });
});

/** A claim's path and key as lock-claims.ts makes them (THE PROTOCOL). */
const keyOfText = (text: string) => createHash('sha256').update(`content:${text}`).digest('hex');
const claimPathOf = (path: string, key: string) =>
  `${path}.claim-${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;

/**
 * Claims on `path` (of key `key`) nested `depth` deep, each left by a holder on another host that
 * stopped an hour ago (stale by its age): the paths, outermost first.
 */
function deadClaimChain(path: string, key: string, depth: number): string[] {
  const chain: string[] = [];
  for (let level = 0, at = path, k = key; level < depth; level++) {
    at = claimPathOf(at, k);
    const text = JSON.stringify({
      owner: `claimant-${level}`,
      host: 'a-host-that-stopped',
      pid: 4242,
      acquired_at: new Date(Date.now() - HOUR_MS).toISOString(),
    });
    writeFileSync(at, text);
    const past = new Date(Date.now() - HOUR_MS);
    utimesSync(at, past, past);
    k = keyOfText(text);
    chain.push(at);
  }
  return chain;
}

describe('a chain of claims left by dead holders', () => {
  it('three deep is broken on the way: the release removes the lock', async () => {
    const lock = await acquireModelLock(dir, 'job-A', { file: LOCK, staleMs: 300 });
    if ('heldBy' in lock) throw new Error('not acquired');
    const path = join(dir, LOCK);
    deadClaimChain(path, keyOfText(readFileSync(path, 'utf8')), 3);
    await lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it('four deep (past MAX_CLAIM_DEPTH): the release gives up with REPOSITORY_ERROR naming the claim; start-up cleanup breaks the chain, and the lock is then broken as stale', async () => {
    const lock = await acquireModelLock(dir, 'job-A', { file: LOCK, staleMs: 300 });
    if ('heldBy' in lock) throw new Error('not acquired');
    const path = join(dir, LOCK);
    const chain = deadClaimChain(path, keyOfText(readFileSync(path, 'utf8')), 4);
    const failure = await lock.release().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(codeOf(failure)).toBe('REPOSITORY_ERROR');
    expect((failure as Error).message).toContain(basename(chain[0] ?? ''));
    expect(existsSync(path)).toBe(true);

    const removed = await removeStaleClaims(dir, 300);
    expect([...removed].sort()).toEqual([...chain].sort());
    const next = await acquireModelLock(dir, 'job-B', { file: LOCK, staleMs: 300 });
    if ('heldBy' in next) throw new Error('the abandoned lock was not broken');
    await next.release();
  });

  it('four deep on a record’s claim: a write under it answers busy after a bounded wait', async () => {
    const record = join(dir, 'job.json');
    const claim = claimPathOf(join(dir, '.job.json'), 'record');
    writeFileSync(
      claim,
      JSON.stringify({ owner: 'c', host: 'a-host-that-stopped', pid: 1, acquired_at: '' }),
    );
    const past = new Date(Date.now() - HOUR_MS);
    utimesSync(claim, past, past);
    deadClaimChain(claim, keyOfText(readFileSync(claim, 'utf8')), 3);
    let written = false;
    const outcome = await writeUnderClaim(
      record,
      async () => {
        written = true;
      },
      { staleMs: 300 },
    );
    expect(outcome).toBe('busy');
    expect(written).toBe(false);
  });
});
