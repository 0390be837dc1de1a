import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { errnoOf } from '../errors/index.js';
import { inOwnPidNamespace, ownPidNamespace, samePidNamespace } from './process-start.js';

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
 * The process that owns a piece of shared work, as a lock file and a job record hold it: its
 * host's name (`hostname()`, as it is), its pid, and its pid namespace where /proc told it
 * (ownPidNamespace: absent in records written before 2026-12-05). A pid is positive: 0 and −1
 * name no process but, given to kill(2), a process group or every process, which would make any
 * owner look alive.
 */
export const processOwnerSchema = z.object({
  host: z.string(),
  pid: z.number().int().positive(),
  pid_namespace: z.number().int().nonnegative().optional(),
});
export type ProcessOwner = z.output<typeof processOwnerSchema>;

/** This process's pid namespace as an owner records it (none where /proc cannot tell). */
export const ownPidNamespaceField = (): { pid_namespace?: number } => {
  const namespace = ownPidNamespace();
  return namespace === undefined ? {} : { pid_namespace: namespace };
};

export const currentOwner = (): ProcessOwner => ({
  host: hostname(),
  pid: process.pid,
  ...ownPidNamespaceField(),
});

/**
 * Whether an owner's pid names a process this process can probe: one of this host (`host`, as
 * the owner's record names hosts) and of this pid namespace.
 */
export const probeableOwner = (owner: ProcessOwner, host: string): boolean =>
  owner.host === host && inOwnPidNamespace(owner.pid_namespace);

/** Whether a lock's or job's owner is this very process. */
export const isThisProcess = (holder: ProcessOwner): boolean => sameProcess(holder, currentOwner());

/**
 * Whether `owner` names `process` (a currentOwner): the same host, pid and, where both record
 * one, pid namespace — the PID 1 of another container of this pod is another process.
 */
export const sameProcess = (owner: ProcessOwner, process: ProcessOwner): boolean =>
  owner.host === process.host &&
  owner.pid === process.pid &&
  samePidNamespace(owner.pid_namespace, process.pid_namespace);

/**
 * True when the owner is known to be gone: a process of this host (same host name) and pid
 * namespace whose pid no longer exists. An owner on another host, or in another container of this
 * host name, cannot be probed: only its heartbeat tells.
 */
export const isOwnerGone = (owner: ProcessOwner): boolean =>
  probeableOwner(owner, hostname()) && owner.pid !== process.pid && !isProcessAlive(owner.pid);
