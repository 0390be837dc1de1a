import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { errnoOf, NormserveError } from '../errors/index.js';
import { removeClaimed, removeUntilDecided } from './lock-claims.js';
import {
  createLinked,
  heldOwners,
  inspect,
  keyOfText,
  type LockOwner,
  leaseMs,
  MAX_LOCK_BYTES,
  sleep,
  staleJudge,
} from './lock-file.js';
import { HEARTBEAT_INTERVAL_MS, ownPidNamespaceField, STALE_AFTER_MS } from './process-alive.js';
import { openWithoutBlocking } from './repository-files.js';

export interface HeldLock {
  owner: string;
  /**
   * The fencing check, called immediately before every write made under the lock (the active
   * record's rename, a publish's rename, a job's final state): throws LOCK_LOST unless the lock
   * file still holds this acquisition's content and this holder's lease has not run out by its
   * own clock (its last heartbeat that found the file its own is at most `staleMs` old). Check
   * and write are two steps: see src/repository/README.md, "Locks", for the window left between them.
   */
  assertHeld(): Promise<void>;
  /**
   * One heartbeat (what the timer runs every `heartbeatMs`): refreshes the lock file's mtime only
   * if the file is still this acquisition's (read and touched through one descriptor, so the
   * file touched is the file checked), and returns whether it was. A lock broken as stale is
   * never renewed by its former holder: it stays lost, and the heartbeats stop.
   */
  heartbeat(): Promise<boolean>;
  release(): Promise<void>;
}

const LOCK_FILE = '.recalibration.lock';
/** Acquisition attempts (link, inspect, break if stale) before answering with the holder. */
const MAX_ATTEMPTS = 5;

/*
 * THE PROTOCOL (why two processes never both hold a lock).
 *
 * A lock is a file at a fixed path (`.recalibration.lock`, `.active-version.lock`), created whole
 * by link(2) of a fully written temporary: link fails with EEXIST when the path is taken, so at
 * most one process creates each lock file, and every file ever at the path is one acquisition's.
 * A file at the path is identified by its key: the SHA-256 of its content (which names the owner
 * and the acquisition's time), or, for a file that no process can read as a lock (too large, not
 * a regular file), its inode. A key comes only from what was read, so every process gives a file
 * the same one: a file this process failed to open or read (EMFILE, ENFILE, EIO, ESTALE, EACCES)
 * has no key here, and is neither judged nor removed but met as busy (another process, reading
 * it, keys it by its content: keyed by its inode here, one file had two keys, so two claims, and
 * was judged "not a lock" and unlinked while its holder heartbeated it). A file leaves the path
 * only by unlink(2), and only through `removeClaimed` (lock-claims.ts):
 *
 *   INVARIANT: a process unlinks the lock path only while it holds the claim of key K (the file
 *   `<lock>.claim-<K>`, created by link(2) like a lock, so at most one process holds it) and,
 *   after taking the claim, has read the path and found a file of key K there. An open or a read
 *   that fails decides nothing: not "a file of another key", not "a file of key K", not "stale".
 *
 * While the claim of K is held and the path holds K, nothing can change what the path holds:
 * removing K needs K's claim (held by us), creating a file needs the path free (it is not), and a
 * heartbeat changes only the mtime. So the unlink that follows the read removes exactly the file
 * that was read and judged, never one linked since, and the judgment (stale? this owner's?) is
 * made again under the claim from what is read then, not from what was read before taking it. The
 * holder's release, a breaker of a stale lock and `releaseModelLockOf` all go through it. Hence:
 * the path holds a lock from its link to its holder's release, unless that lock was judged stale
 * under its claim; and a holder whose lock was broken learns it at its next fencing check or
 * heartbeat (the file is no longer its own), never renewing or removing its successor's.
 *
 * What the old protocol did wrong (issue: a counter incremented under the lock by 3 processes lost
 * a third of its increments): a lock that vanished between a failed link and the read counted as
 * stale and whatever was at the path then was removed; a lock renamed aside by mistake was linked
 * back only if the path was still free, and was otherwise deleted — and meanwhile, the path being
 * free, a third process could take the lock while its rightful holder still held it.
 *
 * A claim is held for a read and an unlink, then removed; one left by a breaker that died holding
 * it is broken by the same rule, one level up (lock-claims.ts).
 *
 * A holder's lease (of a lock or a claim: the fencing check's `staleMs / 2`) starts at the clock
 * read before its file is written, never after the link: the file's mtime, what others judge it
 * by, is set while it is written (before the fsync and the link), so a lease counted from after a
 * slow fsync would outlast what others grant it.
 * What stays assumed: no process pauses for `staleMs` (30 s) between taking a claim and removing
 * it (a handful of system calls); a holder paused that long is what the fencing check is for.
 */

/**
 * A per-model lock shared by every process using the repository (workers of one machine, replicas
 * on a shared volume): a file linked into place in the model directory (THE PROTOCOL above),
 * holding the owner's id (and `cli`, the program, when a command-line program's job holds it:
 * LockOwner). The recalibration lock by default (`.recalibration.lock`); `file` names another
 * (the short lock of the active-version record, active-record-lock.ts).
 * The holder refreshes its mtime every `heartbeatMs`; a lock whose holder died (same host, pid gone
 * or this very pid with an owner this process does not hold: an earlier process's, see heldOwners)
 * or whose heartbeat stopped for `staleMs` is broken, so a crashed holder never blocks the model.
 * A directory where the lock goes is refused (REPOSITORY_ERROR naming it), never deleted.
 * `now` is the holder's clock for its own lease (assertHeld; tests pause a holder with it).
 */
export async function acquireModelLock(
  modelDir: string,
  owner: string,
  options: {
    heartbeatMs?: number;
    staleMs?: number;
    file?: string;
    cli?: string;
    now?: () => number;
  } = {},
): Promise<HeldLock | { heldBy: LockOwner }> {
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
  const staleMs = options.staleMs ?? STALE_AFTER_MS;
  const now = options.now ?? Date.now;
  const path = join(modelDir, options.file ?? LOCK_FILE);
  const content: LockOwner = {
    owner,
    host: hostname(),
    pid: process.pid,
    ...ownPidNamespaceField(),
    acquired_at: new Date().toISOString(),
    ...(options.cli !== undefined ? { cli: options.cli } : {}),
  };
  const text = JSON.stringify(content);
  const stale = staleJudge(staleMs);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    // Counted as held before the link: from the moment the file is in place, another acquisition
    // in this process must see it as this process's.
    heldOwners.add(owner);
    // The lease starts before the file is written: its mtime (what others judge it by) is at the
    // earliest this moment, never earlier, so the holder's lease never outlasts what others grant
    // it, however long the write and the fsync take.
    const writtenFrom = now();
    let linked = false;
    try {
      linked = await createLinked(modelDir, path, text);
    } finally {
      if (!linked) heldOwners.delete(owner);
    }
    if (linked)
      return heldLock(modelDir, path, owner, text, { heartbeatMs, staleMs, now, writtenFrom });
    const found = await inspect(modelDir, path);
    // Released between the link and the read: the path is free, try again.
    if (found === undefined) continue;
    // Not read (EMFILE, EIO, ESTALE, EACCES…): it cannot be judged, so it is busy; try again.
    if ('unreadable' in found) {
      await sleep(2 ** attempt);
      continue;
    }
    if (!stale(found)) return { heldBy: found.owner ?? unknownHolder };
    // Broken only if still the same file and still stale when read again under its claim.
    const outcome = await removeClaimed(modelDir, path, found.key, stale, staleMs, 0);
    // Another process is judging it under its claim (a read and an unlink): give it that time.
    if (outcome === 'busy') await sleep(2 ** attempt);
  }
  const found = await inspect(modelDir, path);
  if (found !== undefined && 'unreadable' in found) {
    const { unreadable: error, mtimeMs } = found;
    // Not read, so never judged stale nor broken. While its heartbeat is fresh a process holds it
    // (busy); once its heartbeat is older than a readable lock's would be allowed, waiting longer
    // does not help (refused by permissions, or a failing disk: EIO, ESTALE), and the operator is
    // told which file, why, and what to do, instead of a 409 "retry later" forever.
    if (Math.abs(Date.now() - mtimeMs) > staleMs)
      throw unreadableLock(modelDir, path, error, mtimeMs);
  }
  return { heldBy: (found !== undefined && 'owner' in found && found.owner) || unknownHolder };
}

/** Errors reading a lock file that come from its permissions (another user's umask). */
const PERMISSION_ERRNOS = new Set(['EACCES', 'EPERM']);

const unreadableLock = (
  modelDir: string,
  path: string,
  error: NodeJS.ErrnoException,
  mtimeMs: number,
): NormserveError =>
  new NormserveError(
    'STORAGE_UNAVAILABLE',
    `${basename(modelDir)}/${basename(path)} cannot be read by this process (${errnoOf(error)}${PERMISSION_ERRNOS.has(errnoOf(error) ?? '') ? ': permission denied' : ''}), and its heartbeat stopped ${Math.round((Date.now() - mtimeMs) / 1000)} s ago: a lock that could be read would be broken as stale, but this one can be neither judged nor removed, so it is left alone and nothing was done. ${
      PERMISSION_ERRNOS.has(errnoOf(error) ?? '')
        ? "It was most likely written by another user whose umask leaves it unreadable (mode 0600); run every process of the repository as one user (or with a umask that lets them read each other's files), or remove the file once its holder is known to be gone"
        : "Check the storage (the error is the file system's), and remove the file once its holder is known to be gone"
    }`,
    { cause: error, extra: { errno: errnoOf(error) } },
  );

/** The holder of a lock whose file could not be read (its owner is not known, only that it holds). */
export const UNKNOWN_LOCK_OWNER = 'unknown';
const unknownHolder: LockOwner = {
  owner: UNKNOWN_LOCK_OWNER,
  host: 'unknown',
  pid: 0,
  acquired_at: '',
};

/** The lock held by this acquisition (content `text` at `path`): fencing, heartbeat, release. */
function heldLock(
  modelDir: string,
  path: string,
  owner: string,
  text: string,
  {
    heartbeatMs,
    staleMs,
    now,
    writtenFrom,
  }: { heartbeatMs: number; staleMs: number; now: () => number; writtenFrom: number },
): HeldLock {
  const key = keyOfText(text);
  // Not now(): the file's mtime is from before its fsync and link (acquireModelLock).
  let renewedAt = writtenFrom;
  let lost = false;
  let released = false;
  const lockLost = (why: string): NormserveError =>
    new NormserveError(
      'LOCK_LOST',
      `${basename(modelDir)}/${basename(path)} is no longer held by this process (${why}), so the write that needed it was not made`,
    );
  const heartbeat = async (): Promise<boolean> => {
    if (lost || released) return false;
    const checkedAt = now();
    let own: boolean;
    try {
      own = await touchIfOwn(path, text);
    } catch {
      // Not read (a transient error of the file system): neither renewed nor known lost.
      return false;
    }
    if (own) renewedAt = checkedAt;
    else {
      lost = true;
      clearInterval(timer);
    }
    return own;
  };
  const timer = setInterval(() => void heartbeat(), heartbeatMs);
  timer.unref();
  return {
    owner,
    heartbeat,
    assertHeld: async () => {
      if (released) throw lockLost('it was released');
      if (lost) throw lockLost('another process broke it as stale');
      const age = now() - renewedAt;
      if (age > leaseMs(staleMs)) {
        // By this holder's own clock, its lease ran out: others may break it before the write
        // that follows this check lands (src/repository/README.md, "Locks": the window left).
        throw lockLost(
          `its last heartbeat was ${Math.round(age / 1000)} s ago, more than its ${leaseMs(staleMs) / 1000} s lease (other processes break it after ${staleMs / 1000} s)`,
        );
      }
      const found = await inspect(modelDir, path);
      // Not read: not known lost, but not known held either, so the write is not made.
      if (found !== undefined && 'unreadable' in found) throw found.unreadable;
      if (found?.key !== key) {
        lost = true;
        clearInterval(timer);
        throw lockLost(
          found?.owner
            ? `it was broken as stale and is now held by process ${found.owner.pid} on ${found.owner.host}`
            : 'it was broken as stale',
        );
      }
    },
    release: async () => {
      clearInterval(timer);
      released = true;
      try {
        // Even when known lost: under its claim, a file of another key is left alone ('gone').
        await removeUntilDecided(modelDir, path, key, () => true, staleMs);
      } finally {
        heldOwners.delete(owner);
      }
    },
  };
}

/**
 * Who holds the model's recalibration lock, as its file says: undefined when there is none, and
 * `unreadable` for a file this process cannot read (held by someone unknown). What a program that
 * was told to release the lock checks before saying it did (the recalibrate CLI's interrupt).
 */
export async function modelLockHolder(
  modelDir: string,
): Promise<LockOwner | 'unreadable' | undefined> {
  const found = await inspect(modelDir, join(modelDir, LOCK_FILE));
  if (found === undefined) return undefined;
  if ('unreadable' in found) return 'unreadable';
  return found.owner ?? 'unreadable';
}

/**
 * Releases the model's lock if `owner` (a job id) still holds it: what a process does for a job it
 * found abandoned (its owner died), the same way acquisition breaks a stale lock.
 */
export async function releaseModelLockOf(modelDir: string, owner: string): Promise<void> {
  const path = join(modelDir, LOCK_FILE);
  const found = await inspect(modelDir, path);
  // Not read (found unreadable): not known to be this owner's, so left to its staleness.
  if (found === undefined || 'unreadable' in found || found.owner?.owner !== owner) return;
  await removeUntilDecided(
    modelDir,
    path,
    found.key,
    (file) => file.owner?.owner === owner,
    STALE_AFTER_MS,
  );
}

/**
 * Refreshes the mtime of the file at `path` if its content is `text`, through the descriptor it
 * was read from (so a file linked there after the read is never touched); whether it was.
 */
async function touchIfOwn(path: string, text: string): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof openWithoutBlocking>>;
  try {
    handle = await openWithoutBlocking(path);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return false;
    throw e;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > MAX_LOCK_BYTES) return false;
    if ((await handle.readFile()).toString('utf8') !== text) return false;
    const at = new Date();
    await handle.utimes(at, at);
    return true;
  } finally {
    await handle.close();
  }
}
