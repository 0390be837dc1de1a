import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { link, lstat, open, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { errnoOf, NormserveError } from '../errors/index.js';
import { temporaryName } from './atomic-write.js';
import { isProcessAlive, probeableOwner, processOwnerSchema } from './process-alive.js';
import { openWithoutBlocking } from './repository-files.js';

/*
 * The files of the lock protocol (THE PROTOCOL, model-lock.ts), a lock's and a claim's alike
 * (lock-claims.ts): what one holds (LockOwner), how it is read and keyed (inspect), linked into
 * place whole (createLinked) and judged stale (staleJudge), and the holder's lease (leaseMs).
 */

/**
 * Who holds a model's lock (the lock file's content). `owner` is a job id that the repository's
 * `.jobs/` records, unless `cli` names the command-line program holding it (`recalibrate`),
 * whose job lives in that process alone: then only `host`, `pid` and `acquired_at` say who it is.
 */
const lockOwnerSchema = processOwnerSchema.extend({
  owner: z.string(),
  acquired_at: z.string(),
  cli: z.string().optional(),
});
export type LockOwner = z.output<typeof lockOwnerSchema>;

/** A lock's content is one small JSON object; anything larger is not a lock. */
export const MAX_LOCK_BYTES = 64 * 1024;

/**
 * The owners of the locks and claims this process holds. A lock of this host naming this
 * process's pid with an owner not in the set was left by an earlier process that had the same
 * pid, in the same pid namespace: a lock written before locks named their namespace (2026-12-05;
 * then a restarted container's PID 1 took its predecessor's lock for its own: an `:activate`
 * waited STALE_AFTER_MS for it), or a server restarted inside its container. Owners are unique ids
 * (job ids, UUIDs), so the set tells the two apart exactly. A restarted container has a new pid
 * namespace, as another container of its pod has its own: such a lock is judged by its heartbeat,
 * since nothing here tells a dead predecessor from a live neighbour.
 */
export const heldOwners = new Set<string>();

/** Waits between attempts on a lock or a claim. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * How long after its last heartbeat a holder still writes under its lock (the fencing check):
 * half the time after which others break it, so a write that passed the check lands before the
 * lock can be broken unless the holder stalls for the other half (minus the hosts' clock skew)
 * between the check and the write. Heartbeats come every HEARTBEAT_INTERVAL_MS (5 s), a third of it.
 */
export const leaseMs = (staleMs: number): number => staleMs / 2;

/** What is at a lock path: its key (see THE PROTOCOL), its owner when it is a lock, its mtime. */
export interface LockFile {
  key: string;
  owner: LockOwner | undefined;
  mtimeMs: number;
}

/**
 * A regular file at a lock path that could not be opened or read (EMFILE, ENFILE, EIO, ESTALE,
 * EACCES…): it has no key, so it is never judged or removed; whoever meets one treats it as busy.
 * `mtimeMs` is its lstat's.
 */
export interface UnreadableFile {
  unreadable: NodeJS.ErrnoException;
  mtimeMs: number;
}

export const keyOfText = (text: string): string =>
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
export async function inspect(
  modelDir: string,
  path: string,
): Promise<LockFile | UnreadableFile | undefined> {
  let info: Stats;
  try {
    info = await lstat(path);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
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
    if (errnoOf(e) === 'ENOENT') return undefined;
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
 * The judge of a lock (or claim) found at a path: stale when it is not a lock (no owner: never
 * written by this code, whose files are linked in whole), when its holder died (same host and pid
 * namespace, pid
 * gone or this very pid with an owner this process does not hold), or when its heartbeat is more
 * than `staleMs` from now, in the past or in the future. A holder's heartbeat is never ahead of
 * the clocks of a repository's hosts by more than their skew (a few seconds, process-alive.ts), so
 * an mtime far ahead is no heartbeat: a clock set wrong on the host that wrote it, or a `touch -d`.
 * Judged by the past alone, such a lock blocked every writer until the clock caught up with it (an
 * `:activate` answered ACTIVE_RECORD_BUSY for a day).
 */
export const staleJudge =
  (staleMs: number) =>
  (file: LockFile): boolean => {
    const { owner } = file;
    if (owner === undefined) return true;
    if (probeableOwner(owner, hostname()) && leftByDeadProcess(owner.pid, owner.owner)) return true;
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
export async function createLinked(dir: string, path: string, text: string): Promise<boolean> {
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
      if (errnoOf(e) === 'EEXIST') return false;
      throw e;
    }
  } finally {
    // Whatever failed (the write, the fsync, the link), the temporary goes: one left per failed
    // acquisition stayed while the server lived.
    await rm(temp, { force: true });
  }
}

const directoryRefusal = (modelDir: string, path: string): NormserveError =>
  new NormserveError(
    'REPOSITORY_ERROR',
    `${basename(modelDir)}/${basename(path)} is a directory where the model's lock file goes; nothing was written: remove the directory (normserve never makes one there) and try again`,
  );
