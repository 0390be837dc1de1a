import { link, lstat, open, rename, rm, stat, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { NormserveError } from '../errors/index.js';
import { temporaryName } from './atomic-write.js';
import { HEARTBEAT_INTERVAL_MS, isProcessAlive, STALE_AFTER_MS } from './process-alive.js';
import { RepositoryFiles } from './repository-files.js';

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
  release(): Promise<void>;
}

const LOCK_FILE = '.recalibration.lock';
/** A lock's content is one small JSON object; anything larger is not a lock. */
const MAX_LOCK_BYTES = 64 * 1024;

/**
 * The owners of the locks this process holds. A lock of this host naming this process's pid with
 * an owner not in the set was left by an earlier process that had the same pid: in a container
 * node runs as PID 1 and the hostname survives a restart, so the previous incarnation's lock looks
 * held by a live process (issue: an `:activate` waited STALE_AFTER_MS for it). Owners are unique
 * ids (job ids, UUIDs), so the set tells the two apart exactly.
 */
const heldOwners = new Set<string>();

/**
 * A per-model lock shared by every process using the repository (workers of one machine, replicas
 * on a shared volume): a file created with O_EXCL in the model directory, holding the owner's id
 * (and `cli`, the program, when a command-line program's job holds it: LockOwner).
 * The recalibration lock by default (`.recalibration.lock`); `file` names another (the short lock
 * of the active-version record, active-record-lock.ts).
 * The holder refreshes its mtime every `heartbeatMs`; a lock whose holder died (same host, pid gone
 * or this very pid with an owner this process does not hold: an earlier process's, see heldOwners)
 * or whose heartbeat stopped for `staleMs` is broken, so a crashed holder never blocks the model.
 * A directory where the lock goes is refused (REPOSITORY_ERROR naming it), never deleted.
 */
export async function acquireModelLock(
  modelDir: string,
  owner: string,
  options: { heartbeatMs?: number; staleMs?: number; file?: string; cli?: string } = {},
): Promise<HeldLock | { heldBy: LockOwner }> {
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_INTERVAL_MS;
  const staleMs = options.staleMs ?? STALE_AFTER_MS;
  const path = join(modelDir, options.file ?? LOCK_FILE);
  const content: LockOwner = {
    owner,
    host: hostname(),
    pid: process.pid,
    acquired_at: new Date().toISOString(),
    ...(options.cli !== undefined ? { cli: options.cli } : {}),
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    // The lock's content is written to a temporary file first and hard-linked into place (link
    // fails when the lock exists), so a lock file is never seen empty, even after a crash.
    const temp = join(modelDir, `${temporaryName()}-lock`);
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(JSON.stringify(content));
      await handle.sync();
    } finally {
      await handle.close();
    }
    // Counted as held before the link: from the moment the file is in place, another acquisition
    // in this process must see it as this process's.
    heldOwners.add(owner);
    try {
      await link(temp, path);
      await rm(temp, { force: true });
      const timer = setInterval(() => {
        const now = new Date();
        utimes(path, now, now).catch(() => undefined);
      }, heartbeatMs);
      timer.unref();
      return {
        owner,
        release: async () => {
          clearInterval(timer);
          try {
            await removeLockOf(modelDir, path, owner);
          } finally {
            heldOwners.delete(owner);
          }
        },
      };
    } catch (e) {
      heldOwners.delete(owner);
      await rm(temp, { force: true });
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = await readOwner(path);
    let stale = false;
    if (holder === undefined) {
      stale = true; // unreadable: never written by this code (the content is linked in whole)
    } else {
      if (holder.host === content.host && leftByDeadProcess(holder.pid, holder.owner)) stale = true;
      else {
        stale = await heartbeatStale(path, staleMs);
      }
    }
    if (!stale)
      return { heldBy: holder ?? { owner: 'unknown', host: 'unknown', pid: 0, acquired_at: '' } };
    await removeLockOf(modelDir, path, holder?.owner);
  }
  const holder = await readOwner(path);
  return { heldBy: holder ?? { owner: 'unknown', host: 'unknown', pid: 0, acquired_at: '' } };
}

/**
 * Releases the model's lock if `owner` (a job id) still holds it: what a process does for a job it
 * found abandoned (its owner died), the same way acquisition breaks a stale lock.
 */
export async function releaseModelLockOf(modelDir: string, owner: string): Promise<void> {
  await removeLockOf(modelDir, join(modelDir, LOCK_FILE), owner);
}

/**
 * Removes the lock file only if it belongs to `owner` (any owner when undefined). The file is
 * renamed aside first, so the owner read and the removal concern the same file even when other
 * processes break or take the lock meanwhile; a lock of someone else renamed by mistake is linked
 * back (unless a newer lock took its place).
 */
async function removeLockOf(
  modelDir: string,
  path: string,
  owner: string | undefined,
): Promise<void> {
  await refuseDirectory(modelDir, path);
  const aside = join(modelDir, `${temporaryName()}-lock-aside`);
  try {
    await rename(path, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if ((await lstat(aside)).isDirectory()) {
    // Made a directory between the check and the rename: put back, not deleted, and refused.
    await rename(aside, path).catch(() => undefined);
    throw directoryRefusal(modelDir, path);
  }
  const found = await readOwner(aside);
  if (owner !== undefined && found !== undefined && found.owner !== owner) {
    await link(aside, path).catch(() => undefined);
  }
  await rm(aside, { force: true });
}

/**
 * Whether a lock of this host names a process that is gone: its pid no longer exists, or it is
 * this process's pid but not a lock this process holds (an earlier process with the same pid).
 */
const leftByDeadProcess = (pid: number, owner: string): boolean =>
  pid === process.pid ? !heldOwners.has(owner) : !isProcessAlive(pid);

/**
 * True when the file's heartbeat (its mtime) is more than `ms` from now, in the past or in the
 * future, or the file is gone (released meanwhile). A holder's heartbeat is never ahead of the
 * clocks of a repository's hosts by more than their skew (a few seconds, process-alive.ts), so an
 * mtime far ahead is no heartbeat: a clock set wrong on the host that wrote it, or a `touch -d`.
 * Judged by the past alone, such a lock blocked every writer until the clock caught up with it
 * (an `:activate` answered ACTIVE_RECORD_BUSY for a day).
 */
async function heartbeatStale(path: string, ms: number): Promise<boolean> {
  try {
    return Math.abs(Date.now() - (await stat(path)).mtimeMs) > ms;
  } catch {
    return true;
  }
}

/**
 * Refuses a directory found where a lock file goes: no process of normserve makes one (a lock is
 * a file linked into place), so it is an operator's or another program's, and deleting a
 * directory tree on the strength of its name is not this code's call. It is left as it is.
 */
async function refuseDirectory(modelDir: string, path: string): Promise<void> {
  const isDirectory = await lstat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (isDirectory) throw directoryRefusal(modelDir, path);
}

const directoryRefusal = (modelDir: string, path: string): NormserveError =>
  new NormserveError(
    'REPOSITORY_ERROR',
    `${basename(modelDir)}/${basename(path)} is a directory where the model's lock file goes; nothing was written: remove the directory (normserve never makes one there) and try again`,
  );

/**
 * The lock's holder; undefined when the file is gone, unreadable or not a lock (being written).
 * Read as any file of the repository (repository-files.ts): a FIFO or a huge file put where the
 * lock goes is not a lock (so it is broken), rather than a read that never returns.
 */
async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const text = await new RepositoryFiles(dirname(path)).readText(path, MAX_LOCK_BYTES);
    return text === undefined ? undefined : lockOwnerSchema.parse(JSON.parse(text));
  } catch {
    return undefined;
  }
}
