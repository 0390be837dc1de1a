import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { errnoOf } from '../errors/index.js';
import { hostTag } from './atomic-write.js';

/**
 * Whether a process of this host is alive (signal 0 probes without signalling). A zombie — a
 * process that has exited but that its parent has not reaped yet — still answers signal 0; it is
 * dead, and said so where /proc tells (Linux): a container whose PID 1 reaps late kept a killed
 * server's job "running" and its lock held for a second or two after it died.
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    if (errnoOf(e) !== 'EPERM') return false;
  }
  return !exitedUnreaped(pid);
}

/** Whether /proc/<pid>/stat says zombie (Z) or dead (X); false where there is no /proc. */
export function exitedUnreaped(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return false;
  }
  // `pid (comm) state …`: comm may hold spaces and parentheses, so the state follows the last ')'.
  const state = stat.charAt(stat.lastIndexOf(')') + 2);
  return state === 'Z' || state === 'X';
}

/**
 * Liveness of work shared through the repository (model locks, job records): the holder shows
 * it is alive every HEARTBEAT_INTERVAL_MS; work whose heartbeat is older than STALE_AFTER_MS is
 * taken as abandoned by every other process. The bound allows six missed heartbeats (a busy event
 * loop, a slow shared file system) before a live holder would be mistaken for a dead one; hosts
 * sharing a repository are assumed to keep their clocks within a few seconds of each other (NTP).
 */
export const HEARTBEAT_INTERVAL_MS = 5_000;
export const STALE_AFTER_MS = 30_000;

/**
 * The process that owns a piece of shared work: its host's tag and its pid, as a lock file and a
 * job record hold it. A pid is positive: 0 and −1 name no process but, given to kill(2), a
 * process group or every process, which would make any owner look alive.
 */
export const processOwnerSchema = z.object({ host: z.string(), pid: z.number().int().positive() });
export type ProcessOwner = z.output<typeof processOwnerSchema>;

export const currentOwner = (): ProcessOwner => ({ host: hostTag(), pid: process.pid });

/**
 * True when the owner is known to be gone: a process of this host (same host tag) whose pid no
 * longer exists. An owner on another host cannot be probed: only its heartbeat tells.
 */
export const isOwnerGone = (owner: ProcessOwner): boolean =>
  owner.host === hostTag() && owner.pid !== process.pid && !isProcessAlive(owner.pid);
