import { createHash, randomUUID } from 'node:crypto';
import { readdir, rm, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { errnoOf, NormserveError } from '../errors/index.js';
import {
  createLinked,
  heldOwners,
  inspect,
  keyOfText,
  type LockFile,
  type LockOwner,
  leaseMs,
  sleep,
  staleJudge,
} from './lock-file.js';
import { ownPidNamespaceField, STALE_AFTER_MS } from './process-alive.js';

/*
 * The claims of the lock protocol (THE PROTOCOL, model-lock.ts): a file leaves a lock's path only
 * through removeClaimed, under the claim of its key; a shared record is rewritten only under its
 * claim (writeUnderClaim).
 *
 * A claim is held for a read and an unlink, then removed. One left by a breaker that died holding
 * it is itself broken by the same rule (a claim on the claim: the judge is the same, dead pid on
 * this host or an mtime more than `staleMs` old), down to MAX_CLAIM_DEPTH claims on claims; a
 * holder's release waits for a live claimant, for twice `staleMs` at most (claimWaitMs): a claim
 * still held then is one this process cannot break (a chain past MAX_CLAIM_DEPTH, four holders
 * that each died within the few system calls of holding one; or an unreadable claim), and the
 * release fails with REPOSITORY_ERROR rather than retrying forever; start-up cleanup
 * (removeStaleClaims) breaks such a chain deepest first.
 */

/** Claims on claims (a breaker that died holding its claim, see removeClaimed) are nested at most this deep. */
const MAX_CLAIM_DEPTH = 3;

type Removal = 'removed' | 'kept' | 'gone' | 'busy';

/** The claim of the file of key `key` at `path` (THE PROTOCOL): `<path>.claim-<hash of key>`. */
const claimPathOf = (path: string, key: string): string =>
  `${path}.claim-${createHash('sha256').update(key).digest('hex').slice(0, 24)}`;

/** What every claim's name ends with (a claim on a claim: `<lock>.claim-<hex>.claim-<hex>`). */
const CLAIM_SUFFIX = /\.claim-[0-9a-f]{24}$/;

/**
 * Runs `action` while holding the claim at `claimPath` (linked into place like a lock, so one
 * process at a time holds it), then removes the claim; 'busy' when another process holds it (a
 * claim left by a dead process, or one `staleMs` old, is broken on the way, by the same rule one
 * level up: a claim on the claim). `action` gets the claim's fencing check, as a held lock's
 * (`assertHeld`): it throws LOCK_LOST unless the claim file is still this one and was taken at most
 * half of `staleMs` ago by `now`, so a holder paused past that (its claim broken as stale) writes
 * nothing when it resumes.
 */
async function holdingClaim<T>(
  dir: string,
  claimPath: string,
  staleMs: number,
  depth: number,
  action: (fence: () => Promise<void>) => Promise<T>,
  now: () => number = Date.now,
): Promise<T | 'busy'> {
  const claimant = randomUUID();
  const text = JSON.stringify({
    owner: claimant,
    host: hostname(),
    pid: process.pid,
    ...ownPidNamespaceField(),
    acquired_at: new Date().toISOString(),
  } satisfies LockOwner);
  heldOwners.add(claimant);
  let claimed = false;
  try {
    // The claim's lease starts before its file is written, as a lock's (acquireModelLock).
    const claimedAt = now();
    claimed = await createLinked(dir, claimPath, text);
    if (!claimed) {
      const other = await inspect(dir, claimPath);
      const staleClaim = staleJudge(staleMs);
      // An unreadable claim is not judged (inspect): busy, as a live one.
      if (other !== undefined && 'key' in other && depth < MAX_CLAIM_DEPTH && staleClaim(other))
        await removeClaimed(dir, claimPath, other.key, staleClaim, staleMs, depth + 1);
      return 'busy';
    }
    const key = keyOfText(text);
    const claimLost = (why: string): NormserveError =>
      new NormserveError(
        'LOCK_LOST',
        `${basename(dir)}/${basename(claimPath)} is no longer held by this process (${why}), so the write that needed it was not made`,
      );
    return await action(async () => {
      const age = now() - claimedAt;
      if (age > leaseMs(staleMs))
        throw claimLost(
          `it was taken ${Math.round(age / 1000)} s ago, more than its ${leaseMs(staleMs) / 1000} s lease`,
        );
      const found = await inspect(dir, claimPath);
      if (found !== undefined && 'unreadable' in found) throw found.unreadable;
      if (found?.key !== key) throw claimLost('it was broken as stale');
    });
  } finally {
    if (claimed) await rm(claimPath, { force: true });
    heldOwners.delete(claimant);
  }
}

/**
 * Removes the file of key `key` at `path` if `remove` says so when it is read again under its
 * claim (THE PROTOCOL): 'removed'; 'kept' when `remove` said no; 'gone' when the path no longer
 * holds that file; 'busy' when another process holds the claim (see holdingClaim).
 */
export function removeClaimed(
  dir: string,
  path: string,
  key: string,
  remove: (file: LockFile) => boolean,
  staleMs: number,
  depth: number,
): Promise<Removal> {
  return holdingClaim(dir, claimPathOf(path, key), staleMs, depth, async (): Promise<Removal> => {
    const found = await inspect(dir, path);
    // Not read: whether it is still the file of `key` is unknown, so nothing is decided.
    if (found !== undefined && 'unreadable' in found) return 'busy';
    if (found?.key !== key) return 'gone';
    if (!remove(found)) return 'kept';
    try {
      await unlink(path);
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw e;
    }
    return 'removed';
  });
}

/**
 * A compare-and-write of a shared record (a job's `.jobs/<id>.json`, rewritten whole by rename):
 * runs `write` holding the record's claim (`.<name>.claim-<hex>` beside it), the claim of the
 * lock's protocol, so that the record read in `write` is the record its rename replaces: whoever
 * else writes the record under the claim waits. `write` runs its fencing check (LOCK_LOST) right
 * before its rename, as a lock's writes do. While another process holds the claim (a read and a
 * rename), tries again after 1, 2, 4… ms (at most 100 ms apart): until decided, or `attempts`
 * times, or for claimWaitMs at most, then answers 'busy'.
 */
export async function writeUnderClaim<T>(
  path: string,
  write: (fence: () => Promise<void>) => Promise<T>,
  options: { staleMs?: number; now?: () => number; attempts?: number } = {},
): Promise<T | 'busy'> {
  const dir = dirname(path);
  const claimPath = claimPathOf(join(dir, `.${basename(path)}`), 'record');
  const staleMs = options.staleMs ?? STALE_AFTER_MS;
  const started = Date.now();
  for (let attempt = 1, waitMs = 1; ; attempt++, waitMs = Math.min(waitMs * 2, 100)) {
    const outcome = await holdingClaim(dir, claimPath, staleMs, 0, write, options.now);
    if (outcome !== 'busy' || attempt === options.attempts) return outcome;
    // A claim busy that long is one this process cannot break (removeUntilDecided): 'busy'.
    if (Date.now() - started > claimWaitMs(staleMs)) return 'busy';
    await sleep(waitMs);
  }
}

/**
 * Removes the claims in `dir` (`*.claim-<hex>`: of a lock, a claim, a record) that their holder
 * left, judged as a claim met on the way is (staleJudge: a dead process of this host, or this
 * pid's claim this process does not hold, or an mtime more than `staleMs` from now) and removed the
 * same way, under a claim on the claim, deepest first. A live claim is never touched. Returns the
 * removed paths. A crash while holding a claim (a read and an unlink or a rename) leaves one; a
 * lock's is broken by its next removal, but one whose lock never comes back stayed forever.
 */
export async function removeStaleClaims(dir: string, staleMs = STALE_AFTER_MS): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return [];
    throw e;
  }
  const depthOf = (name: string) => name.split('.claim-').length - 1;
  const claims = names
    .filter((n) => n.startsWith('.') && CLAIM_SUFFIX.test(n))
    .sort((a, b) => depthOf(b) - depthOf(a));
  const stale = staleJudge(staleMs);
  const removed: string[] = [];
  for (const name of claims) {
    const path = join(dir, name);
    const found = await inspect(dir, path).catch(() => undefined);
    if (found === undefined || 'unreadable' in found || !stale(found)) continue;
    const depth = Math.min(depthOf(name), MAX_CLAIM_DEPTH);
    if ((await removeClaimed(dir, path, found.key, stale, staleMs, depth)) === 'removed')
      removed.push(path);
  }
  return removed;
}

/**
 * How long a claim may stay busy before its waiter gives up: a live claimant holds it for a few
 * system calls, and one that died is broken once its claim is `staleMs` old, so a claim still busy
 * after twice that is one this process cannot break — a claim at MAX_CLAIM_DEPTH whose holder died
 * too (four nested crashes, each while holding a claim), or a file it cannot read.
 */
const claimWaitMs = (staleMs: number): number => 2 * staleMs;

/**
 * removeClaimed until it decides (not 'busy'): a release waits for the process that holds the
 * claim of its lock (a breaker judging it, for a read and an unlink), or for that claim to be
 * broken if its holder died; for claimWaitMs at most, then REPOSITORY_ERROR naming the claim (the
 * lock stays, its heartbeat stopped: a server's start-up cleanup, removeStaleClaims, breaks such a
 * chain deepest first, and then the lock as stale).
 */
export async function removeUntilDecided(
  dir: string,
  path: string,
  key: string,
  remove: (file: LockFile) => boolean,
  staleMs: number,
): Promise<Removal> {
  const started = Date.now();
  for (let waitMs = 1; ; waitMs = Math.min(waitMs * 2, 100)) {
    const outcome = await removeClaimed(dir, path, key, remove, staleMs, 0);
    if (outcome !== 'busy') return outcome;
    const waitedMs = Date.now() - started;
    if (waitedMs > claimWaitMs(staleMs))
      throw new NormserveError(
        'REPOSITORY_ERROR',
        `${basename(dir)}/${basename(path)} was not removed: its claim ${basename(claimPathOf(path, key))} stayed held for ${Math.round(waitedMs / 1000)} s, longer than a live claimant holds one or a dead one's is left before it is broken; it is held by a chain of claims left by processes that died holding them, deeper than a running process breaks (${MAX_CLAIM_DEPTH}), or cannot be read. The lock stays, its heartbeat stopped; a server's start-up cleanup removes such claims (deepest first), or remove the claims beside it once their holders are known to be gone`,
      );
    await sleep(waitMs);
  }
}
