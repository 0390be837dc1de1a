import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { NormserveError } from '../errors/index.js';
import { removeClaimed } from './lock-claims.js';
import { inspect, sleep, staleJudge } from './lock-file.js';
import { acquireModelLock, UNKNOWN_LOCK_OWNER } from './model-lock.js';
import { STALE_AFTER_MS } from './process-alive.js';

/**
 * The lock every writer of a model's active-version record holds while it reads and writes it, and
 * every deletion of a version while it reads the record and removes the version's directory.
 */
export const ACTIVE_RECORD_LOCK_FILE = '.active-version.lock';

/** First and longest pause between attempts: a holder keeps the lock for a read and one write. */
const FIRST_RETRY_MS = 2;
const MAX_RETRY_MS = 100;
/**
 * How long a writer waits for the record's lock before giving up (default of `maxWaitMs`): a
 * holder that died on this host is seen at once, one on another host once its heartbeat is
 * STALE_AFTER_MS old (acquireModelLock breaks it then), so a lock still held after twice that
 * belongs to a live, stuck writer.
 */
export const ACTIVE_RECORD_LOCK_WAIT_MS = 2 * STALE_AFTER_MS;
/**
 * The Retry-After of ACTIVE_RECORD_BUSY: the holder of a lock given up on showed a heartbeat
 * within the last STALE_AFTER_MS (an older one is broken), so should it stop now, its lock can be
 * broken STALE_AFTER_MS from now.
 */
const RETRY_AFTER_SECONDS = Math.ceil(STALE_AFTER_MS / 1000);

/** How a writer waits for a busy record lock (withActiveRecordLock). */
export interface ActiveRecordWait {
  /** How long to wait for a busy lock before ACTIVE_RECORD_BUSY (default ACTIVE_RECORD_LOCK_WAIT_MS). */
  maxWaitMs?: number | undefined;
  /** What ACTIVE_RECORD_BUSY says was left undone (a deletion holds the lock too). */
  undone?: string;
  /**
   * Called before each wait for a busy lock; what it throws ends the wait, nothing written: a
   * recalibration interrupted by the shutdown's budget stops waiting for another replica's writer
   * (up to ACTIVE_RECORD_LOCK_WAIT_MS) and settles within the budget's reserve.
   */
  stopWaiting?: () => void;
}

/**
 * Runs `write` holding the lock of the active-version record of the model in `modelDir`, shared by
 * every process of the repository (workers, replicas on a shared volume). Renaming a new record
 * into place is atomic, but "read the record, decide, write" is not: without the lock, an
 * operator's rollback written by another process between a job's read and its write would be
 * overwritten (the job's "activate only if my parent is still active", issue of the rollback
 * undone). The lock is held for one read and one write (a publish: its rename, loading the version
 * back and its activation, ModelRepository.withActiveRecord), so a busy lock is waited for, up to
 * `maxWaitMs`; then ACTIVE_RECORD_BUSY, and nothing was written (or, sooner, what `stopWaiting`
 * throws).
 */
export async function withActiveRecordLock<T>(
  modelDir: string,
  /** The lock file as messages name it (relative to the repository). */
  label: string,
  /**
   * The reads and writes to make holding the lock; `fence` (the lock's fencing check, LOCK_LOST
   * when the lock is no longer this call's) goes immediately before each write.
   */
  write: (fence: () => Promise<void>) => Promise<T>,
  {
    maxWaitMs = ACTIVE_RECORD_LOCK_WAIT_MS,
    undone = 'the active version was not written',
    stopWaiting,
  }: ActiveRecordWait = {},
): Promise<T> {
  const owner = randomUUID();
  const started = Date.now();
  for (let retryMs = FIRST_RETRY_MS; ; retryMs = Math.min(retryMs * 2, MAX_RETRY_MS)) {
    const lock = await acquireModelLock(modelDir, owner, { file: ACTIVE_RECORD_LOCK_FILE });
    if (!('heldBy' in lock)) {
      let result: T;
      try {
        result = await write(lock.assertHeld);
      } catch (e) {
        await lock.release().catch(() => undefined); // the write's error is the one to report
        throw e;
      }
      // Written: a lock file that cannot be removed now (a failing disk) does not undo the
      // write; with its heartbeat stopped, the next writer breaks it as stale.
      await lock.release().catch(() => undefined);
      return result;
    }
    if (Date.now() - started > maxWaitMs) {
      const { owner, host, pid, acquired_at } = lock.heldBy;
      const holder =
        owner === UNKNOWN_LOCK_OWNER
          ? 'by a process whose lock file cannot be read now'
          : `since ${acquired_at} by process ${pid} on ${host}`;
      throw new NormserveError(
        'ACTIVE_RECORD_BUSY',
        `${label} has been held ${holder}, and was still held after waiting ${maxWaitMs / 1000} s; ${undone}`,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    // Before each wait, never before the first attempt: a caller told to stop still takes a
    // free lock (an undo that must not be skipped just because a shutdown began).
    stopWaiting?.();
    await sleep(retryMs);
  }
}

/**
 * Removes the record's lock of the model in `modelDir` when its holder is gone, by the lock's own
 * rule (staleJudge; removed under its claim, as acquireModelLock breaks it): for the start-up
 * cleanup. A writer breaks such a lock anyway, but one left on disk through restarts reads as a
 * write still in progress (the operations tester of 2026-12-05). Its path when removed.
 */
export async function removeStaleActiveRecordLock(modelDir: string): Promise<string | undefined> {
  const path = join(modelDir, ACTIVE_RECORD_LOCK_FILE);
  const found = await inspect(modelDir, path);
  if (found === undefined || 'unreadable' in found) return undefined;
  const stale = staleJudge(STALE_AFTER_MS);
  if (!stale(found)) return undefined;
  const outcome = await removeClaimed(modelDir, path, found.key, stale, STALE_AFTER_MS, 0);
  return outcome === 'removed' ? path : undefined;
}
