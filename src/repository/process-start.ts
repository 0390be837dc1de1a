import { readFileSync, readlinkSync } from 'node:fs';

/**
 * Linux's USER_HZ, the unit of a process's start time in /proc/<pid>/stat: 100 on every
 * architecture Linux supports (it is part of the ABI, whatever the kernel's own HZ; proc(5)).
 */
const USER_HZ = 100;

/**
 * When process `pid` of this host started, in clock ticks after boot (/proc/<pid>/stat, field 22):
 * with its pid, it names one process for as long as the host runs, whatever its clock does — a
 * pid alone is reused (a container's restart gives the server PID 1 again). Undefined where /proc
 * cannot tell (no such process, not Linux).
 */
export function processStartTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // Fields after the last ')' (comm may hold spaces and parentheses) begin with field 3 (state):
  // field 22 is the 20th of them.
  const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  return Number.isSafeInteger(ticks) && ticks >= 0 ? ticks : undefined;
}

let ownTicks: number | undefined | null = null;

/** This process's processStartTicks, read once. */
export function ownStartTicks(): number | undefined {
  if (ownTicks === null) ownTicks = processStartTicks(process.pid);
  return ownTicks;
}

let ownNamespace: number | undefined | null = null;

/**
 * This process's pid namespace (the inode /proc/self/ns/pid names, `pid:[4026531836]`), read
 * once; undefined where /proc cannot tell. A pid, and the start ticks with it, name a process only
 * within one pid namespace; a host name does not tell namespaces apart: the containers of one
 * Kubernetes pod share the pod's host name and each has its own pids (each server is PID 1 there),
 * as do containers started with `--network host` and their host.
 */
export function ownPidNamespace(): number | undefined {
  if (ownNamespace === null) {
    try {
      const inode = Number(/^pid:\[([0-9]+)\]$/.exec(readlinkSync('/proc/self/ns/pid'))?.[1]);
      ownNamespace = Number.isSafeInteger(inode) ? inode : undefined;
    } catch {
      ownNamespace = undefined;
    }
  }
  return ownNamespace;
}

/**
 * Whether a process named by `pidNamespace` (its ownPidNamespace, where it recorded one) is in
 * this process's pid namespace, so that its pid can be probed from here (given the same host). A
 * record without one (written before 2026-12-05), or a process with no /proc here, counts as the
 * same, as every record did before.
 */
export const inOwnPidNamespace = (pidNamespace: number | undefined): boolean =>
  samePidNamespace(pidNamespace, ownPidNamespace());

/** Whether two recorded pid namespaces are one; one not recorded (older, no /proc) matches any. */
export const samePidNamespace = (a: number | undefined, b: number | undefined): boolean =>
  a === undefined || b === undefined || a === b;

let namespaceStart: number | undefined | null = null;

/**
 * When this pid namespace began: its PID 1's start (processStartedAtMs(1)), read once — a
 * namespace's PID 1 lives as long as the namespace.
 */
export function pidNamespaceStartedAtMs(): number | undefined {
  if (namespaceStart === null) namespaceStart = processStartedAtMs(1);
  return namespaceStart;
}

/**
 * When process `pid` of this host started, in ms since the epoch: its processStartTicks against
 * this process's, from when this one started (`performance.timeOrigin`, taken as Node starts: a
 * few ms after the kernel's start; ticks are 10 ms); undefined where /proc cannot tell. Not from
 * /proc/uptime: LXCFS and Sysbox give a container its own age there while /proc/<pid>/stat counts
 * from the host's boot, which put PID 1's start hours in the future (the second reader of a77ea67).
 */
export function processStartedAtMs(pid: number): number | undefined {
  const ticks = processStartTicks(pid);
  const own = ownStartTicks();
  if (ticks === undefined || own === undefined) return undefined;
  return performance.timeOrigin - ((own - ticks) * 1000) / USER_HZ;
}
