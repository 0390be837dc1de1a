import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  abandonedWriter,
  DELETION_LEFTOVER_MARK,
  TEMPORARY_MAX_AGE_MS,
} from './abandoned-writer.js';
import type { DroppedPin } from './active-record.js';
import { TEMP_PREFIX } from './atomic-write.js';
import { isMissing } from './repository-files.js';

/** What removeTemporaries did: the paths removed, and those it failed to remove, with why. */
export interface TemporariesRemoval {
  removed: string[];
  failed: { path: string; error: string }[];
  /**
   * Models whose pin was undone: its publish's process died before the version was published
   * (or the version it published does not load), settleAbandonedPin.
   */
  pinsUndone: string[];
  /**
   * Conditional activations finished: the publish's process died after renaming `version` into
   * place and before recording it as active, while the condition held (settleAbandonedPin).
   */
  pinActivations: { model: string; version: number; intentsReplaced?: DroppedPin[] }[];
  /**
   * Pins still to be settled that a pin made lasting dropped, being past MAX_PINS_SETTLED pins
   * down its chain (DroppedPin): nothing settles them now; for the caller to log.
   */
  pinsDropped: { model: string; pins: DroppedPin[] }[];
  /**
   * Models whose dead publisher's pin could not be settled now (a version directory or the record
   * that could not be read, the record's lock held elsewhere): the next cleanup tries again.
   */
  pinsUnsettled: { model: string; error: string }[];
}

/** A removal that has removed and settled nothing yet (filled in as it goes). */
export const nothingRemoved = (): TemporariesRemoval => ({
  removed: [],
  failed: [],
  pinsUndone: [],
  pinActivations: [],
  pinsDropped: [],
  pinsUnsettled: [],
});

/**
 * Deletes the temporaries (temporaryName's) in `dir` that their writer abandoned: those of a
 * process of this host that is dead, or that is not the process now running with its pid
 * (pidReused), those of another pid namespace of this host written before this one began
 * (writtenBeforeNamespace), those older than `maxAgeMs` whose writer cannot be told alive: of
 * another host or pid namespace, or named without its start, those of a live writer of this host older than a day
 * (LIVE_WRITER_MAX_AGE_MS), and every version deleteVersion hid (DELETION_LEFTOVER_MARK). A
 * missing `dir` holds none. Never throws: what it cannot list or remove is returned in `failed`.
 */
export async function removeAbandonedTemporaries(
  dir: string,
  maxAgeMs = TEMPORARY_MAX_AGE_MS,
  /**
   * Given the abandoned temporaries about to be removed (their paths), settles what they are
   * evidence of first, and returns those to keep (settlePinsBeforeRemoving).
   */
  settleFirst?: (abandoned: readonly string[]) => Promise<readonly string[]>,
): Promise<TemporariesRemoval> {
  const result = nothingRemoved();
  const failed = (path: string, e: unknown) =>
    result.failed.push({ path, error: e instanceof Error ? e.message : String(e) });
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if (!isMissing(e)) failed(dir, e);
    names = [];
  }
  const abandoned: string[] = [];
  for (const entry of names.filter((n) => n.startsWith(TEMP_PREFIX))) {
    const path = join(dir, entry);
    // Stat'ed once, when a rule first needs it.
    let mtime: Promise<number> | undefined;
    const mtimeMs = () => (mtime ??= stat(path).then((s) => s.mtimeMs));
    try {
      if (
        entry.includes(DELETION_LEFTOVER_MARK) ||
        (await abandonedWriter(entry, mtimeMs, maxAgeMs))
      )
        abandoned.push(path);
    } catch (e) {
      if (!isMissing(e)) failed(path, e);
    }
  }
  const keep = new Set(settleFirst ? await settleFirst(abandoned) : []);
  for (const path of abandoned.filter((p) => !keep.has(p))) {
    try {
      await rm(path, { recursive: true, force: true });
      result.removed.push(path);
    } catch (e) {
      if (!isMissing(e)) failed(path, e);
    }
  }
  return result;
}
