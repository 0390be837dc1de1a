import { readFileSync } from 'node:fs';

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

/**
 * When process `pid` of this host started, in ms since the epoch: processStartTicks against the
 * time since boot now (/proc/uptime), both of the host's clock, in containers too; within ~20 ms.
 * Undefined where /proc cannot tell.
 */
export function processStartedAtMs(pid: number): number | undefined {
  const ticks = processStartTicks(pid);
  if (ticks === undefined) return undefined;
  try {
    const upSeconds = Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]);
    if (!Number.isFinite(upSeconds)) return undefined;
    return Date.now() - (upSeconds - ticks / USER_HZ) * 1000;
  } catch {
    return undefined;
  }
}
