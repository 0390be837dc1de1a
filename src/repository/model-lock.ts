import { createHash, randomUUID } from 'node:crypto';
import type { Stats } from 'node:fs';
import { link, lstat, open, readdir, rm, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { NormserveError } from '../errors/index.js';
import { temporaryName } from './atomic-write.js';
import { HEARTBEAT_INTERVAL_MS, isProcessAlive, STALE_AFTER_MS } from './process-alive.js';
import { openWithoutBlocking } from './repository-files.js';

/**
 * Who holds a model's lock (the lock file's content). `owner` is a job id that the repository's
 * `.jobs/` records, unless `cli` names the command-line program holding it (`recalibrate`),
 * whose job lives in that process alone: then only `host`, `pid` and `acquired_at` say who it is.
 */
const lockOwnerSchema = z.object({
  owner: z.string(),
  host: z.string(),
  pid: z.number().int(),
  acquired_at: z.string(),
  cli: z.string().optional(),
});
export type LockOwner = z.output<typeof lockOwnerSchema>;

export interface HeldLock {
  owner: string;
  /**
   * The fencing check, called immediately before every write made under the lock (the active
   * record's rename, a publish's rename, a job's final state): throws LOCK_LOST unless the lock
   * file still holds this acquisition's content and this holder's lease has not run out by its
   * own clock (its last heartbeat that found the file its own is at most `staleMs` old). Check
   * and write are two steps: see README.md, "Locks", for the window left between them.
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
/** A lock's content is one small JSON object; anything larger is not a lock. */
const MAX_LOCK_BYTES = 64 * 1024;
/** Acquisition attempts (link, inspect, break if stale) before answering with the holder. */
const MAX_ATTEMPTS = 5;
/** Claims on claims (a breaker that died holding its claim, see removeClaimed) are nested at most this deep. */
const MAX_CLAIM_DEPTH = 3;

/**
 * The owners of the locks and claims this process holds. A lock of this host naming this
 * process's pid with an owner not in the set was left by an earlier process that had the same
 * pid: in a container node runs as PID 1 and the hostname survives a restart, so the previous
 * incarnation's lock looks held by a live process (issue: an `:activate` waited STALE_AFTER_MS for
 * it). Owners are unique ids (job ids, UUIDs), so the set tells the two apart exactly.
 */
const heldOwners = new Set<string>();

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;

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
 * only by unlink(2), and only through `removeClaimed`:
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
 * A claim is held for a read and an unlink, then removed. One left by a breaker that died holding
 * it is itself broken by the same rule (a claim on the claim: the judge is the same, dead pid on
 * this host or an mtime more than `staleMs` old), down to MAX_CLAIM_DEPTH claims on claims; a
 * holder's release waits for a live claimant, for twice `staleMs` at most (claimWaitMs): a claim
 * still held then is one this process cannot break (a chain past MAX_CLAIM_DEPTH, four holders
 * that each died within the few system calls of holding one; or an unreadable claim), and the
 * release fails with REPOSITORY_ERROR rather than retrying forever; start-up cleanup
 * (removeStaleClaims) breaks such a chain deepest first.
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
    `${basename(modelDir)}/${basename(path)} cannot be read by this process (${errno(error)}${PERMISSION_ERRNOS.has(errno(error) ?? '') ? ': permission denied' : ''}), and its heartbeat stopped ${Math.round((Date.now() - mtimeMs) / 1000)} s ago: a lock that could be read would be broken as stale, but this one can be neither judged nor removed, so it is left alone and nothing was done. ${
      PERMISSION_ERRNOS.has(errno(error) ?? '')
        ? "It was most likely written by another user whose umask leaves it unreadable (mode 0600); run every process of the repository as one user (or with a umask that lets them read each other's files), or remove the file once its holder is known to be gone"
        : "Check the storage (the error is the file system's), and remove the file once its holder is known to be gone"
    }`,
    { cause: error, extra: { errno: errno(error) } },
  );

/**
 * How long after its last heartbeat a holder still writes under its lock (the fencing check):
 * half the time after which others break it, so a write that passed the check lands before the
 * lock can be broken unless the holder stalls for the other half (minus the hosts' clock skew)
 * between the check and the write. Heartbeats come every HEARTBEAT_INTERVAL_MS (5 s), a third of it.
 */
const leaseMs = (staleMs: number): number => staleMs / 2;

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
        // that follows this check lands (README.md, "Locks": the window).
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

/** What is at a lock path: its key (see THE PROTOCOL), its owner when it is a lock, its mtime. */
interface LockFile {
  key: string;
  owner: LockOwner | undefined;
  mtimeMs: number;
}

/**
 * A regular file at a lock path that could not be opened or read (EMFILE, ENFILE, EIO, ESTALE,
 * EACCES…): it has no key, so it is never judged or removed; whoever meets one treats it as busy.
 * `mtimeMs` is its lstat's.
 */
interface UnreadableFile {
  unreadable: NodeJS.ErrnoException;
  mtimeMs: number;
}

const keyOfText = (text: string): string =>
  createHash('sha256').update(`content:${text}`).digest('hex');

/**
 * Reads what is at `path`; undefined when nothing is. Read as any file of the repository: opened
 * without blocking (a FIFO put there is not a lock, rather than a read that never returns), size
 * checked before reading. A file that is not a lock has no owner (stale): one whose content was
 * read and is not a lock's JSON (keyed by that content, as any file), and one that no process can
 * read as a lock, whoever it is (too large, not a regular file, a symbolic link: keyed by its
 * inode). A regular file that could not be opened or read is neither (UnreadableFile): an error of
 * this process (out of descriptors, EMFILE), of the moment (EIO, ESTALE) or of its permissions
 * (EACCES) says nothing of the file, and another process may read it and key it by its content,
 * so calling it a non-lock broke live locks. A directory is refused.
 */
async function inspect(
  modelDir: string,
  path: string,
): Promise<LockFile | UnreadableFile | undefined> {
  let info: Stats;
  try {
    info = await lstat(path);
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw e;
  }
  if (info.isDirectory()) throw directoryRefusal(modelDir, path);
  const byInode = (s: Stats): LockFile => ({
    key: `inode:${s.dev}:${s.ino}:${s.size}`,
    owner: undefined,
    mtimeMs: s.mtimeMs,
  });
  if (!info.isFile() || info.size > MAX_LOCK_BYTES) return byInode(info);
  let handle: Awaited<ReturnType<typeof openWithoutBlocking>>;
  const unreadable = (e: unknown): UnreadableFile => ({
    unreadable: e as NodeJS.ErrnoException,
    mtimeMs: info.mtimeMs,
  });
  try {
    handle = await openWithoutBlocking(path);
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    return unreadable(e);
  }
  try {
    const opened = await handle.stat();
    if (!opened.isFile() || opened.size > MAX_LOCK_BYTES) return byInode(opened);
    const text = (await handle.readFile()).toString('utf8');
    let owner: LockOwner | undefined;
    try {
      owner = lockOwnerSchema.parse(JSON.parse(text));
    } catch {
      owner = undefined;
    }
    return { key: keyOfText(text), owner, mtimeMs: opened.mtimeMs };
  } catch (e) {
    return unreadable(e);
  } finally {
    await handle.close().catch(() => undefined);
  }
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
    if (errno(e) === 'ENOENT') return false;
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

/**
 * The judge of a lock (or claim) found at a path: stale when it is not a lock (no owner: never
 * written by this code, whose files are linked in whole), when its holder died (same host, pid
 * gone or this very pid with an owner this process does not hold), or when its heartbeat is more
 * than `staleMs` from now, in the past or in the future. A holder's heartbeat is never ahead of
 * the clocks of a repository's hosts by more than their skew (a few seconds, process-alive.ts), so
 * an mtime far ahead is no heartbeat: a clock set wrong on the host that wrote it, or a `touch -d`.
 * Judged by the past alone, such a lock blocked every writer until the clock caught up with it (an
 * `:activate` answered ACTIVE_RECORD_BUSY for a day).
 */
const staleJudge =
  (staleMs: number) =>
  (file: LockFile): boolean => {
    const { owner } = file;
    if (owner === undefined) return true;
    if (owner.host === hostname() && leftByDeadProcess(owner.pid, owner.owner)) return true;
    return Math.abs(Date.now() - file.mtimeMs) > staleMs;
  };

/**
 * Whether a lock of this host names a process that is gone: its pid no longer exists, or it is
 * this process's pid but not a lock this process holds (an earlier process with the same pid).
 */
const leftByDeadProcess = (pid: number, owner: string): boolean =>
  pid === process.pid ? !heldOwners.has(owner) : !isProcessAlive(pid);

/**
 * Links a file holding `text` at `path` if nothing is there: true when linked, false when the path
 * was taken (EEXIST). The content goes to a temporary file first, fsynced, so the file is never
 * seen empty or partial, even after a crash; the temporary is removed whatever happens.
 */
async function createLinked(dir: string, path: string, text: string): Promise<boolean> {
  const temp = join(dir, `${temporaryName()}-lock`);
  const handle = await open(temp, 'wx');
  try {
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, path);
      return true;
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      throw e;
    }
  } finally {
    // Whatever failed (the write, the fsync, the link), the temporary goes: one left per failed
    // acquisition stayed while the server lived.
    await rm(temp, { force: true });
  }
}

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
function removeClaimed(
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
      if (errno(e) !== 'ENOENT') throw e;
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
    if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return [];
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
async function removeUntilDecided(
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

const directoryRefusal = (modelDir: string, path: string): NormserveError =>
  new NormserveError(
    'REPOSITORY_ERROR',
    `${basename(modelDir)}/${basename(path)} is a directory where the model's lock file goes; nothing was written: remove the directory (normserve never makes one there) and try again`,
  );
