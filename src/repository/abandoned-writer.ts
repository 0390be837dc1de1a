import { hostTag, type TemporaryWriter, temporaryWriter } from './atomic-write.js';
import { isProcessAlive } from './process-alive.js';
import {
  inOwnPidNamespace,
  pidNamespaceStartedAtMs,
  processStartedAtMs,
  processStartTicks,
} from './process-start.js';

/** How old a temporary of another host must be to be taken as abandoned (its writer may live). */
export const TEMPORARY_MAX_AGE_MS = 3_600_000;

/**
 * How old a temporary of a live process of this host must be to be taken as abandoned: no write
 * lasts a day, and no file-system clock lags the host's by one. What such a process left without
 * its own removal succeeding (a staged directory whose discard failed) would otherwise stay for as
 * long as it runs — a server, for months — and so would one whose writer's start /proc hides
 * (hidepid: taken as alive).
 */
const LIVE_WRITER_MAX_AGE_MS = 86_400_000;

/**
 * In the name of a version deleteVersion hid (`<temporaryName>-deleted-<v>`): its removal, not a
 * write, is what may be in progress, and a second removal only races the first; the version is
 * deleted already. So such a leftover is removed by any cleanup, whoever hid it.
 */
export const DELETION_LEFTOVER_MARK = '-deleted-';

/**
 * How much earlier than the start of the live process with its pid a temporary named without its
 * writer's start (temporaryWriter) must have been last written to be another process's: the
 * start time is known within ~20 ms (processStartedAtMs), and this leaves room for a small step
 * of the clock.
 */
const WRITTEN_BEFORE_START_MARGIN_MS = 500;

/**
 * Whether a temporary of this host and pid namespace was left by an earlier process with the pid
 * of one now running (pids are reused: a server restarted in its container, and, before names had
 * the namespace, a restarted container's PID 1). A server killed in a publish and restarted in the
 * same pod found its own pid in the leftover's name and kept it for an hour (the second reader of
 * 2026-12-05, with a pin that meanwhile hid every newer version; a restarted container is now
 * told by its new namespace, writtenBeforeNamespace). A name with its writer's start ticks says so exactly; one without (written before
 * 2026-12-05, or where /proc cannot tell) is judged by its mtime against the live process's start,
 * which a file system whose clock lags the host's could misjudge.
 */
function pidReused(writer: TemporaryWriter, mtimeMs: () => Promise<number>): Promise<boolean> {
  if (writer.startTicks !== undefined) {
    const ticks = processStartTicks(writer.pid);
    return Promise.resolve(ticks !== undefined && ticks !== writer.startTicks);
  }
  const started = processStartedAtMs(writer.pid);
  if (started === undefined) return Promise.resolve(false);
  return mtimeMs().then((m) => m < started - WRITTEN_BEFORE_START_MARGIN_MS);
}

/**
 * Whether a temporary of another pid namespace of this host was last written before this pid
 * namespace began (its PID 1 started; within WRITTEN_BEFORE_NAMESPACE_MARGIN_MS). That namespace
 * is another process of this host name — another container of the pod, a host-network replica, a
 * CLI on the host itself, whose live writes a cleanup must leave alone — or this
 * container before its restart: a restart makes a new namespace, and the old one's processes all
 * ended before it began. So what was written before is taken as abandoned: a server killed in a
 * publish and restarted has its staged directory, and the pin naming it, removed at its start, not
 * an hour later. A write of another namespace's begun before this one started and still in
 * progress is the price (its publish fails with an error; run again, it succeeds). Never where PID 1 started with the host (no
 * container): nothing is older.
 */
async function writtenBeforeNamespace(mtimeMs: () => Promise<number>): Promise<boolean> {
  const started = pidNamespaceStartedAtMs();
  return started !== undefined && (await mtimeMs()) < started - WRITTEN_BEFORE_NAMESPACE_MARGIN_MS;
}

/**
 * How much earlier than this pid namespace's start a temporary of another one must have been last
 * written to be its predecessor's: the mtime is the file server's clock on a shared file system,
 * which the hosts keep within a few seconds of theirs. A restart quicker than this leaves its
 * predecessor's temporaries to the hour's rule.
 */
const WRITTEN_BEFORE_NAMESPACE_MARGIN_MS = 2_000;

/**
 * Whether the writer of a temporary named `entry` (temporaryName's) abandoned it, `mtimeMs` being
 * when it was last written: a process of this host that is dead, or that is not the process now
 * running with its pid (pidReused); another pid namespace of this host, written before this one
 * began (writtenBeforeNamespace); older than `maxAgeMs` when its writer cannot be told alive (of
 * another host or pid namespace, or named without its start); older than a day for a live writer
 * of this host (LIVE_WRITER_MAX_AGE_MS). The leftovers' rule (removeAbandonedTemporaries), and a
 * pin's (settleAbandonedPin: its staged directory's name, the record's mtime).
 */
export async function abandonedWriter(
  entry: string,
  mtimeMs: () => Promise<number>,
  maxAgeMs: number,
): Promise<boolean> {
  const writer = temporaryWriter(entry);
  const sameHost = writer !== undefined && writer.host === hostTag();
  // Another pid namespace under this host name is as another host: its pids mean other
  // processes here.
  const local = sameHost && inOwnPidNamespace(writer.pidNamespace) ? writer : undefined;
  return (
    (local !== undefined &&
      ((local.pid !== process.pid && !isProcessAlive(local.pid)) ||
        (await pidReused(local, mtimeMs)))) ||
    (sameHost && local === undefined && (await writtenBeforeNamespace(mtimeMs))) ||
    // A live writer of this host named with its start: for a day whatever the clocks say.
    Date.now() - (await mtimeMs()) >
      (local?.startTicks === undefined ? maxAgeMs : Math.max(maxAgeMs, LIVE_WRITER_MAX_AGE_MS))
  );
}
