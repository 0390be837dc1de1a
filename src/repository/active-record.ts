import { lstat, stat, unlink, utimes } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { CONFIG_FILE, type LoadedCheckpoint } from '../checkpoint/index.js';
import {
  describeLocations,
  errnoOf,
  isNormserveError,
  issuesToLocations,
  NormserveError,
  parseJsonText,
  safeParseWorded,
  versionNotFound,
} from '../errors/index.js';
import {
  abandonedWriter,
  DELETION_LEFTOVER_MARK,
  TEMPORARY_MAX_AGE_MS,
} from './abandoned-writer.js';
import { ACTIVE_RECORD_LOCK_FILE, withActiveRecordLock } from './active-record-lock.js';
import { fsyncPath, TEMP_PREFIX, writeFileAtomically } from './atomic-write.js';
import { isBrokenCheckpoint } from './broken-checkpoint.js';
import { isMissing, type RepositoryFiles } from './repository-files.js';
import {
  isStorageFailure,
  refusedByStorage,
  storageFailure,
  UnsyncedWrite,
} from './storage-failure.js';

/** The record of the version an operator activated (`<name>/active-version.json`). */
export const activeRecordSchema = z.looseObject({
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  updated_at: z.string().optional(),
  note: z.string().optional(),
  /**
   * A pin's (HeldActiveRecord.pin: the record naming the version served, written in the hold that
   * publishes a version which must not be served as the highest): the staged directory (`.tmp-…`
   * in the model's directory) of that publish. Should its process die before the rename, the
   * cleanup that removes the directory undoes the pin too (settleAbandonedPin), as the publish's
   * own failure would. A publish that goes through replaces its pin with a plain record.
   */
  pinned_for: z.string().optional(),
  /**
   * A pin's too: what the staged directory `pinned_for` names holds, taken when the pin is
   * written — its config.json's SHA-256 — by which a cleanup that finds the staged directory gone
   * tells whether it was renamed into place as a version (a version above the one pinned holds
   * that config.json: the publish went through, and its pin is made lasting) or went without a
   * rename (removed by hand: the pin is undone), not by whether some version above the one pinned
   * is there, which a `train` (no lock) or a broken version makes true for other reasons (h282
   * R1). Not by the directory's inode: a rename keeps it on a local file system, not on every one
   * a repository lives on (overlayfs without xino, CIFS with noserverino, FUSE stores), and a
   * version not found is undone — the version published as inactive then served as the highest —
   * where a version wrongly found (another publish of the same config.json) only makes the pin
   * lasting, the version pinned staying served (h283 F2). Absent from pins written before
   * 2026-12 (the cleanup then falls back on that older rule) and when the staged directory could
   * not be found as the pin was written.
   */
  pinned_staged: z
    .looseObject({
      /** The SHA-256 of its config.json, in hex. */
      config_sha256: z.string().regex(/^[0-9a-f]{64}$/),
    })
    .optional(),
  /**
   * A pin's too: the text of the record it replaced (one naming a version whose directory is gone,
   * or a dead publisher's pin), put back by that cleanup as the publish's own failure puts it
   * back. Absent when there was no record (the undo removes the pin).
   */
  pinned_over: z.string().optional(),
  /**
   * A conditional pin's (a recalibration activated only if its parent is still active), written
   * under the record's lock just before the staged directory is renamed into place as `version`,
   * when the condition holds (the pin names the parent): the activation that follows in the same
   * hold would replace the record. Should the process die between the rename and that write, the
   * directory `pinned_for` names is gone and only this tells the cleanup that the publish happened
   * and what it was about to do (settleAbandonedPin): it finishes the activation when `version` is
   * there and is the directory that was staged (its config.json's digest: another publisher may
   * have taken the number, but a recalibration's config.json is its own), else undoes the pin. Absent from records written before
   * 2026-12 and from an inactive publish's pin (which is the record it leaves).
   */
  pinned_publishing: z
    .looseObject({
      version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
      /**
       * The staged directory's inode number, in decimal (a 64-bit number: not a JSON number):
       * recorded, not relied on — a rename keeps it on a local file system only (h285).
       */
      inode: z.string().regex(/^[0-9]{1,20}$/),
      /**
       * The SHA-256 of the staged config.json, by which the cleanup knows the version: a
       * recalibration's config.json is its own (its provenance: created_at, the data's digest).
       */
      config_sha256: z.string().regex(/^[0-9a-f]{64}$/),
    })
    .optional(),
});
export type ActiveRecord = z.output<typeof activeRecordSchema>;
/** An active-version record is a few dozen bytes; anything this large is not one. */
const MAX_ACTIVE_RECORD_BYTES = 64 * 1024;

export const ACTIVE_FILE = 'active-version.json';

/** The most pins one settleAbandonedPin settles, one put back by the undo of the one before. */
const MAX_PINS_SETTLED = 8;

/** What writeActive wrote, and what the record it replaced named (read under the same lock). */
export interface ActiveWrite {
  record: ActiveRecord;
  /** The version the replaced record named; null when there was no usable record. */
  replaced: number | null;
  /** The record is written (every reader sees it) but its directory could not be synced. */
  unsynced?: UnsyncedWrite;
  /**
   * Activations the replaced record held still to be finished (pendingIntents): dead publishes'
   * that this write replaced, for the caller to log — their versions stay published, inactive.
   */
  intentsReplaced?: DroppedPin[];
}

/**
 * A pin still to be settled (its staged directory there, or the activation it was about to write:
 * `publishing`) that a pin made lasting dropped, being more than MAX_PINS_SETTLED pins down the
 * chain under it (lastingRecord): for the caller to log, as nothing will settle it now.
 */
export interface DroppedPin {
  /** The version it pinned. */
  version: number;
  /** Its staged directory's name. */
  pinnedFor: string;
  /** The version its publish was about to activate (`pinned_publishing`), if any. */
  publishing?: number;
}

/**
 * What a log line adds of dead publishes' activations an activation replaced (pendingIntents):
 * their versions, left published and inactive; nothing when there are none.
 */
export function intentsReplacedWords(
  name: string,
  replaced: readonly DroppedPin[] | undefined,
): string {
  if (replaced === undefined || replaced.length === 0) return '';
  const numbers = replaced.map((p) => String(p.publishing));
  const versions =
    numbers.length === 1
      ? `version ${numbers[0]}`
      : `versions ${numbers.slice(0, -1).join(', ')} and ${numbers.at(-1)}`;
  return `; it replaced the activation of ${versions} still to be finished (its publish died, or could not write it, and left it to the cleanup): ${versions} ${numbers.length === 1 ? 'stays' : 'stay'} published, inactive (activate it to serve it: POST /v1/models/${name}/versions/<v>:activate)`;
}

/**
 * What the cleanup did to a dead publisher's pin (settleAbandonedPin): undone, or the activation
 * it was about to write finished — with the activations still to be finished under it that this
 * one replaced (pendingIntents: the later wins), for the caller to log.
 */
export type PinSettled = { undone: true } | { activated: number; intentsReplaced?: DroppedPin[] };

/**
 * What a warning says of pins still to be settled that a pin made lasting dropped (DroppedPin):
 * nothing settles them now — an activation one was about to write is never finished.
 */
export function droppedPinsWords(name: string, dropped: readonly DroppedPin[]): string {
  const each = dropped.map((p) =>
    p.publishing !== undefined
      ? `${p.pinnedFor} (its publish was activating version ${p.publishing})`
      : p.pinnedFor,
  );
  return `${ACTIVE_FILE} of "${name}" held pins more than ${MAX_PINS_SETTLED} deep; dropped, still to be settled: ${each.join(', ')}. Nothing will settle them: an activation one was about to write is not finished (activate the version by hand if wanted: POST /v1/models/${name}/versions/<v>:activate)`;
}

/** A pin HeldActiveRecord.pin wrote. */
export interface WrittenPin {
  record: ActiveRecord;
  /** The text of the record it replaced; undefined: there was none (its undo removes the pin). */
  previous?: string;
  /**
   * The mtime of the record it replaced, given back with it (undone, or carried: settlePin): a
   * dead publisher's pin is judged abandoned by its record's age (abandonedWriter), which a
   * rewrite must not make new again (h271: each inactive publish put its activation off an hour).
   */
  previousMtimeMs?: number;
  /** The pin is written (every reader sees it) but its directory could not be synced. */
  unsynced?: UnsyncedWrite;
  /**
   * Written over a plain record naming the same version (pinFor's `intentFor`): no version
   * depends on it to stay unserved, it only carries a conditional publish's intent; unsynced, or
   * its intent not written, the publish goes on (a crash that loses it leaves that plain record).
   */
  intentOnly?: true;
}

/** What writeActiveIf did: written, or not, and then what the record named. */
export type ActiveIfWrite =
  | {
      written: true;
      record: ActiveRecord;
      unsynced?: UnsyncedWrite;
      intentsReplaced?: DroppedPin[];
    }
  | { written: false; found: number | null };

/**
 * The text of an active-version record as written (compared by restoreActive), its keys in the
 * schema's order: a record read back and parsed then gives the same text, however the object
 * written was put together (a pin carried over by settlePin had its keys in another order, and
 * the cleanup's compare-and-write never matched it: h269).
 */
const recordText = (record: ActiveRecord): string =>
  `${JSON.stringify(activeRecordSchema.parse(record))}\n`;

/**
 * Errnos of a record's read that will fail the same way the next time, for a file that is no
 * record a writer wrote (recordTextFor): a symbolic link to itself (ELOOP), a socket (ENXIO, as
 * a FIFO is refused by fstat: not a regular file). Every other errno is the storage's, and may
 * pass (ESTALE, ETIMEDOUT, EMFILE, ENOTCONN, EREMOTEIO…): STORAGE_UNAVAILABLE.
 */
const LASTING_READ_ERRNOS: ReadonlySet<string> = new Set(['ELOOP', 'ENXIO']);

/**
 * Whether a pin's `pinned_for` names a temporary of its model's directory (temporaryName's): one
 * edited by hand to name anything else is nobody's leftover, and is never looked up.
 */
const isTemporaryName = (name: string): boolean =>
  name.startsWith(TEMP_PREFIX) && basename(name) === name;

/** Whether `path` exists; a failure other than ENOENT counts as there (nothing decided on it). */
const exists = (path: string): Promise<boolean> =>
  lstat(path).then(
    () => true,
    (e: unknown) => !isMissing(e),
  );

/**
 * What ActiveRecordStore asks of the repository whose records it keeps (ModelRepository): where a
 * model's and a version's directories are, which versions are there or were deleted, and a
 * version's load. Called through the repository each time, so that what a test puts in place of
 * one of its methods is what the store calls.
 */
export interface RepositoryVersions {
  modelPath(name: string): string;
  versionPath(name: string, version: number): string;
  listVersions(name: string): Promise<number[]>;
  deletedVersions(name: string): Promise<number[]>;
  loadVersion(name: string, version: number): Promise<LoadedCheckpoint>;
}

/**
 * The active-version records of a repository's models (`<name>/active-version.json`, ACTIVE_FILE):
 * read, written under the record's lock (active-record-lock.ts), conditionally written, and the
 * pins a publish writes and a cleanup settles. ModelRepository holds one and answers for it.
 */
export class ActiveRecordStore {
  private readonly root: string;
  private readonly files: RepositoryFiles;
  private readonly activeRecordLockWaitMs: number | undefined;
  private readonly repository: RepositoryVersions;

  constructor(
    root: string,
    files: RepositoryFiles,
    activeRecordLockWaitMs: number | undefined,
    repository: RepositoryVersions,
  ) {
    this.root = root;
    this.files = files;
    this.activeRecordLockWaitMs = activeRecordLockWaitMs;
    this.repository = repository;
  }

  /**
   * The active-version record of a model; undefined when there is none. A record that cannot be
   * read or is not a record is REPOSITORY_ERROR naming the file relative to the repository.
   */
  async readActive(name: string): Promise<ActiveRecord | undefined> {
    const path = join(this.repository.modelPath(name), ACTIVE_FILE);
    const text = await this.files.readText(path, MAX_ACTIVE_RECORD_BYTES);
    return text === undefined ? undefined : this.parseActive(path, text);
  }

  /** The text of an active-version record, parsed (readActive). */
  private parseActive(path: string, text: string): ActiveRecord {
    const where = this.files.label(path);
    const value = parseJsonText(text, where, 'REPOSITORY_ERROR');
    const parsed = safeParseWorded(activeRecordSchema, value);
    if (!parsed.success) {
      throw new NormserveError(
        'REPOSITORY_ERROR',
        `${where}: ${describeLocations(issuesToLocations(parsed.error.issues), 3)}`,
      );
    }
    return parsed.data;
  }

  /**
   * Records the active version, atomically (rename over the old record), holding the record's
   * lock (withActiveRecordLock) so that no conditional write (writeActiveIf) of another process
   * can decide on the record this replaces; ACTIVE_RECORD_BUSY, nothing written, when the lock
   * stays held longer than activeRecordLockWaitMs. A deletion of a version holds the same lock
   * (deleteVersion), so the two are ordered: this checks, under the lock, that `version` is still
   * there before writing (VERSION_NOT_FOUND, nothing written, when a deletion came first), and a
   * deletion after this one finds the version active (ACTIVE_VERSION_DELETE). The record never
   * names a missing version, even for a moment.
   */
  async writeActive(name: string, version: number, note?: string): Promise<ActiveWrite> {
    return this.withRecordLock(name, version, (fence) =>
      this.replaceActive(name, version, fence, note),
    );
  }

  /**
   * Records `version` as active only if the record names `expected` now (null: there is no
   * usable record — none, or one that cannot be read), deciding and writing under the record's
   * lock, against the file on disk rather than any process's last poll. Otherwise writes nothing
   * and returns what it found (the recorded version; null without a usable record).
   * ACTIVE_RECORD_BUSY, nothing written, when the lock stays held (as writeActive). `fence`, the
   * fencing check of another lock the caller holds (a recalibration's), is checked with the
   * record lock's own immediately before the write (LOCK_LOST, nothing written); `stopWaiting`
   * ends the wait for a busy lock by throwing (ActiveRecordWait), nothing written.
   */
  async writeActiveIf(
    name: string,
    version: number,
    expected: number | null,
    note?: string,
    { fence, stopWaiting }: { fence?: () => Promise<void>; stopWaiting?: () => void } = {},
  ): Promise<ActiveIfWrite> {
    return this.withRecordLock(
      name,
      version,
      (recordFence) =>
        this.replaceActiveIf(
          name,
          version,
          expected,
          async () => {
            await fence?.();
            await recordFence();
          },
          note,
        ),
      stopWaiting,
    );
  }

  /**
   * Puts back the record `written` replaced (`previous`, its text; undefined: there was none, and
   * the record is removed), holding the record's lock, only if the record is still exactly
   * `written`: another writer's record since is never clobbered. Whether it did. For a write
   * whose purpose failed (a dead publisher's pin: settleAbandonedPin).
   */
  async restoreActive(
    name: string,
    written: ActiveRecord,
    previous: string | undefined,
    /** The mtime to give the record put back (putBack's). */
    previousMtimeMs?: number,
  ): Promise<boolean> {
    return this.withRecordLock(name, written.version, (fence) =>
      this.putBack(name, written, previous, fence, previousMtimeMs),
    );
  }

  /** restoreActive's read and write, the record's lock held (`fence`: its fencing check). */
  async putBack(
    name: string,
    written: ActiveRecord,
    previous: string | undefined,
    fence: () => Promise<void>,
    /** The mtime `previous` had (WrittenPin's previousMtimeMs), given back with it. */
    previousMtimeMs?: number,
  ): Promise<boolean> {
    const dir = this.repository.modelPath(name);
    const path = join(dir, ACTIVE_FILE);
    const now = await this.comparableRecordText(path);
    if (now !== recordText(written)) return false;
    await fence();
    if (previous === undefined) {
      await unlink(path);
      await fsyncPath(dir).catch(() => undefined); // removed for every reader already
    } else {
      await this.writeRecord(name, previous, fence);
      await this.keepRecordAge(name, previousMtimeMs);
    }
    return true;
  }

  /**
   * Gives the record the mtime `mtimeMs` (a record put back, or a dead publisher's pin carried:
   * WrittenPin's previousMtimeMs). Best effort: a record that stays new is judged later, not
   * wrongly.
   */
  private async keepRecordAge(name: string, mtimeMs: number | undefined): Promise<void> {
    if (mtimeMs === undefined) return;
    const when = new Date(mtimeMs);
    await utimes(join(this.repository.modelPath(name), ACTIVE_FILE), when, when).catch(
      () => undefined,
    );
  }

  /**
   * The version a publish that must not be served as the highest pins first (HeldActiveRecord.pin),
   * and the text of the record the pin replaces; undefined when no pin is needed. Decided from the
   * record on disk: a pin is needed when "highest version wins" would otherwise serve the new
   * version, now or once a pin is undone — there is no record; the record is a pin (another
   * publish's that died or could not undo it: its undo would remove it, h264; the new pin keeps
   * it to put back); or it names a version whose directory is gone (then served as without a
   * record: swap, model-registry.ts). It names the version the pinned-over pin names while that
   * is there, else the version served now (`servedNow`, asked only then: the caller's view of the
   * repository, taken under the lock when the caller holds it); none without one. A record
   * naming a version that is there, even one that fails to load, and a file that is not a record
   * at all are left as they are: no version replaces either (swap), and they are an operator's
   * (h267). A read that fails throws (recordTextFor): nothing is decided on a record that cannot
   * be read. One exception (`intentFor`: a conditional publish's parent, the lock held): a plain
   * record naming that version is pinned over too, naming it still, so that the intent the publish
   * writes into its pin just before its rename (`pinned_publishing`) is on record should the
   * process die between the rename and the activation — the cleanup then finishes the activation,
   * as it does over no record. Without a pin that activation was lost (h288); the pin's undo, or
   * its settlement when the activation is not written, puts that record back as it was.
   */
  async pinFor(
    name: string,
    servedNow: () => Promise<number | undefined>,
    intentFor?: number,
  ): Promise<{ version: number; over?: string; intentOnly?: true } | undefined> {
    const path = join(this.repository.modelPath(name), ACTIVE_FILE);
    const text = await this.recordTextFor(path);
    if (text === null) return undefined; // not a record: served as it was (swap)
    const record = text === undefined ? undefined : this.tryParseActive(path, text);
    if (text !== undefined && record === undefined) return undefined; // not a record either
    const present =
      record !== undefined && (await this.repository.listVersions(name)).includes(record.version);
    if (record !== undefined && record.pinned_for === undefined && present)
      return record.version === intentFor
        ? { version: record.version, over: text!, intentOnly: true }
        : undefined;
    const version =
      record?.pinned_for !== undefined && present ? record.version : await servedNow();
    if (version === undefined) return undefined;
    return { version, ...(text !== undefined ? { over: text } : {}) };
  }

  /** The text of a record, parsed; undefined when it is not a record (parseActive's failures). */
  private tryParseActive(path: string, text: string): ActiveRecord | undefined {
    try {
      return this.parseActive(path, text);
    } catch {
      return undefined;
    }
  }

  /**
   * HeldActiveRecord.settlePin, the record's lock held (`fence`: its fencing check): the pin
   * replaced by the lasting record lastingRecord gives.
   */
  async settlePin(
    name: string,
    pin: WrittenPin,
    note: string,
    fence: () => Promise<void>,
  ): Promise<{ written: boolean; dropped: DroppedPin[] }> {
    const { next, carried, dropped } = await this.lastingRecord(
      name,
      pin.record.version,
      pin.previous,
      note,
    );
    const written = await this.replaceIfExactly(name, pin.record, next, fence);
    if (written && carried) await this.keepRecordAge(name, pin.previousMtimeMs);
    return { written, dropped: written ? dropped : [] };
  }

  /**
   * The lasting record a pin of `version` leaves once its publish went through (`over`: the text
   * the pin replaced): a plain one naming the version, `note` its note; except when the pin was
   * written over other publishes' pins that a cleanup is still to settle — each one's staged
   * directory still there (its process may be gone: the cleanup undoes it), or the activation it
   * was about to write (`pinned_publishing`: the cleanup finishes it) — which are put back
   * (`carried`), each naming the version, in the order they were, with that plain record at the
   * bottom as the one the last undo restores (h269: the intent used to be dropped, and the
   * activation never finished). The whole chain under the pin, not only the pin directly under
   * it: a dead recalibration's intent two pins down was replaced by the plain record (h279 R1).
   * A pin of the chain with nothing left to settle (its directory gone, no intent: its publish
   * went through) is dropped, what is under it kept. The chain is read MAX_PINS_SETTLED pins deep,
   * as the cleanup reads it (pinnedDirectories, settleAbandonedPin); any deeper are dropped, and
   * those of them still to be settled are returned (`dropped`) for the caller to log: nothing
   * settles them then (h282 R5: dropped silently, a dead recalibration's intent among them). A pin
   * written over a plain record naming `version` (a conditional publish's intent: pinFor's
   * `intentFor`) leaves that record as it was wherever it is in the chain, its note kept; its age
   * too when it is directly under the pin (`carried`).
   */
  private async lastingRecord(
    name: string,
    version: number,
    over: string | undefined,
    note: string,
  ): Promise<{ next: ActiveRecord; carried: boolean; dropped: DroppedPin[] }> {
    const path = join(this.repository.modelPath(name), ACTIVE_FILE);
    /** `text` when it is a plain record naming `version` (an operator's, a conditional's parent). */
    const plainNaming = (text: string | undefined): ActiveRecord | undefined => {
      const record = text === undefined ? undefined : this.tryParseActive(path, text);
      return record?.pinned_for === undefined && record?.version === version ? record : undefined;
    };
    const fresh: ActiveRecord = { version, updated_at: new Date().toISOString(), note };
    // The record at the bottom of the chain (where `carry` ends), kept as it is when it is a plain
    // record naming `version`: the pin over it was a conditional publish's intent (h291 4).
    let plain = fresh;
    const dropped: DroppedPin[] = [];
    /** `text` as a pin of the chain (a temporary's name), and whether it is still to be settled. */
    const pinOf = async (text: string | undefined) => {
      const pin = text === undefined ? undefined : this.tryParseActive(path, text);
      // Not a pin (a plain record, an operator's, not a record) or one edited by hand: the chain
      // ends; the publish's plain record replaces it, as it always did.
      if (pin?.pinned_for === undefined || !isTemporaryName(pin.pinned_for)) return undefined;
      const pending =
        pin.pinned_publishing !== undefined ||
        (await exists(join(this.repository.modelPath(name), pin.pinned_for)));
      return { pin, pinnedFor: pin.pinned_for, pending };
    };
    /** The pins still to be settled in `text` and under it, over `plain`; undefined: none. */
    const carry = async (
      text: string | undefined,
      depth: number,
    ): Promise<ActiveRecord | undefined> => {
      if (depth >= MAX_PINS_SETTLED) {
        // Past the depth: walked only to say what is dropped (bounded: each pin is a record of at
        // most MAX_ACTIVE_RECORD_BYTES, holding the ones under it).
        for (let rest = text; rest !== undefined; ) {
          const found = await pinOf(rest);
          if (found === undefined) {
            plain = plainNaming(rest) ?? fresh;
            break;
          }
          const { pin, pinnedFor, pending } = found;
          if (pending)
            dropped.push({
              version: pin.version,
              pinnedFor,
              ...(pin.pinned_publishing !== undefined
                ? { publishing: pin.pinned_publishing.version }
                : {}),
            });
          rest = pin.pinned_over;
        }
        return undefined;
      }
      const found = await pinOf(text);
      if (found === undefined) {
        plain = plainNaming(text) ?? fresh;
        return undefined;
      }
      const inner = await carry(found.pin.pinned_over, depth + 1);
      if (!found.pending) return inner;
      return { ...found.pin, version, pinned_over: recordText(inner ?? plain) };
    };
    const next = await carry(over, 0);
    // The operator's record directly under the pin is given its age back with it (`carried`).
    return next === undefined
      ? { next: plain, carried: plain !== fresh && plainNaming(over) !== undefined, dropped }
      : { next, carried: true, dropped };
  }

  /**
   * HeldActiveRecord.pin, the record's lock held (`fence`: its fencing check). A pin over a plain
   * record naming `intentFor` (WrittenPin.intentOnly) is written if it can be: one the storage
   * refuses (an errno), or too large, is no pin — the publish goes on as before such pins
   * existed, its intent not on record — while the fence's failure (LOCK_LOST) still ends it.
   */
  async writePin(
    name: string,
    servedNow: () => Promise<number | undefined>,
    pinnedFor: string,
    note: string,
    fence: () => Promise<void>,
    intentFor?: number,
  ): Promise<WrittenPin | undefined> {
    const pin = await this.pinFor(name, servedNow, intentFor);
    if (pin === undefined) return undefined;
    if (!pin.intentOnly) return this.writePinOf(name, pin, pinnedFor, note, fence);
    try {
      return { ...(await this.writePinOf(name, pin, pinnedFor, note, fence)), intentOnly: true };
    } catch (e) {
      // The storage's refusal (a raw errno, or one already worded), or a record too large to pin
      // over; never the fence's (LOCK_LOST: a NormserveError, whose `code` errnoOf would read).
      if (refusedByStorage(e) || (isNormserveError(e) && e.code === 'REPOSITORY_ERROR'))
        return undefined;
      throw e;
    }
  }

  /** writePin's write of the pin `pin` (pinFor's) decided. */
  private async writePinOf(
    name: string,
    pin: { version: number; over?: string },
    pinnedFor: string,
    note: string,
    fence: () => Promise<void>,
  ): Promise<WrittenPin> {
    const replacedMtimeMs =
      pin.over === undefined
        ? undefined
        : await stat(join(this.repository.modelPath(name), ACTIVE_FILE)).then(
            (s) => s.mtimeMs,
            () => undefined,
          );
    const staged = await this.directoryIdentity(join(this.repository.modelPath(name), pinnedFor));
    const record: ActiveRecord = {
      version: pin.version,
      updated_at: new Date().toISOString(),
      note,
      pinned_for: pinnedFor,
      ...(staged !== undefined ? { pinned_staged: staged } : {}),
      ...(pin.over !== undefined ? { pinned_over: pin.over } : {}),
    };
    const text = recordText(record);
    // A pin too large to read back would take the record away from every reader: the publish
    // fails instead, nothing written (the record it would replace is kept whole, never dropped).
    if (Buffer.byteLength(text) > MAX_ACTIVE_RECORD_BYTES)
      throw new NormserveError(
        'REPOSITORY_ERROR',
        `cannot pin version ${pin.version} of "${name}" before publishing: ${this.files.label(join(this.repository.modelPath(name), ACTIVE_FILE))} (${Buffer.byteLength(pin.over ?? '')} bytes) is too large to keep under a pin; activate a version (POST /v1/models/${name}/versions/<v>:activate) and publish again`,
      );
    if (!(await this.repository.listVersions(name)).includes(pin.version))
      throw versionNotFound(name, pin.version, 'it was deleted');
    const unsynced = await this.writeRecord(name, text, fence);
    return {
      record,
      ...(pin.over !== undefined ? { previous: pin.over } : {}),
      ...(replacedMtimeMs !== undefined ? { previousMtimeMs: replacedMtimeMs } : {}),
      ...(unsynced ? { unsynced } : {}),
    };
  }

  /**
   * What a directory holds, as a pin records its staged directory's (`pinned_staged`): its
   * config.json's SHA-256; undefined when the directory or its config.json is not there. A read
   * that fails otherwise throws: nothing is decided on what could not be read.
   */
  private async directoryIdentity(dir: string): Promise<{ config_sha256: string } | undefined> {
    const info = await stat(dir).catch((e: unknown) => {
      if (isMissing(e)) return undefined;
      throw e;
    });
    if (!info?.isDirectory()) return undefined;
    const sha = await this.files.sha256(join(dir, CONFIG_FILE));
    return sha === undefined ? undefined : { config_sha256: sha };
  }

  /**
   * Whether a version of `name` above `pinned` holds what a pin recorded of its staged directory
   * (`pinned_staged`): it was renamed into place. The highest first (the version a publish renames
   * into is almost always the highest). A version whose files refuse it for good (a config.json
   * that is a directory, a FIFO, a link out of the repository) is not the one; one whose read
   * fails with an errno (ESTALE, EIO, EACCES) might be: when no other version matches, that
   * failure is thrown, for the next cleanup to decide — taken for "not this one", it undid the pin
   * of a publish that went through, and the version published as inactive was served as the
   * highest (h283 F1); and one version that could never be read blocked the pin for good (h285).
   */
  private async publishedAs(
    name: string,
    pinned: number,
    identity: { config_sha256: string },
  ): Promise<boolean> {
    const above = (await this.repository.listVersions(name)).filter((v) => v > pinned).reverse();
    let unread: unknown;
    for (const version of above) {
      try {
        const held = await this.directoryIdentity(this.repository.versionPath(name, version));
        if (held?.config_sha256 === identity.config_sha256) return true;
      } catch (e) {
        if (!isBrokenCheckpoint(e)) unread ??= e;
      }
    }
    if (unread !== undefined) throw unread;
    return false;
  }

  /**
   * The record's text for a decision: undefined when there is none; null when the file is not a
   * record a writer could have written (too large, not a regular file, a link out of the
   * repository or to itself: LASTING_READ_ERRNOS). Any other failure of the read throws — the
   * storage table's (EIO, EACCES) as it came, for storageFailure to word, every other errno as
   * STORAGE_UNAVAILABLE naming the record: nothing is decided on a record that cannot be read now
   * and may read the next time — not "another writer's record" for a compare-and-write (h264), not
   * "no record" for a pin (h267). An errno nobody listed is taken as the storage's (h279 R2:
   * ENOTCONN, EREMOTEIO on a network file system read as "not a record" in an undo's
   * compare-and-write, which then took the pin for one changed by hand, and the publish discarded
   * the staged directory the pin named); only the known lasting ones are no record.
   */
  private async recordTextFor(path: string): Promise<string | null | undefined> {
    return this.files.readText(path, MAX_ACTIVE_RECORD_BYTES).catch((e: unknown) => {
      const wrapped = isNormserveError(e);
      if (wrapped && e.code !== 'REPOSITORY_ERROR') throw e;
      const failure = wrapped ? e.cause : e;
      const errno = errnoOf(failure);
      if (isStorageFailure(failure)) throw failure;
      // One that will not pass (ELOOP: a link to itself): no record a writer wrote, as a link out
      // of the repository is none (h271).
      if (errno !== undefined && LASTING_READ_ERRNOS.has(errno)) return null;
      // Any other errno may pass (ESTALE or ETIMEDOUT on a network file system, EMFILE, one not
      // foreseen): the storage cannot give the record now, as for EIO (h269: it was thrown raw,
      // a 500 INTERNAL).
      if (errno !== undefined)
        throw new NormserveError(
          'STORAGE_UNAVAILABLE',
          wrapped ? e.message : `${this.files.label(path)}: cannot be read (${errno})`,
          { cause: failure, extra: { errno } },
        );
      // RepositoryFiles' own refusals, without an errno (too large, not a regular file, a link
      // out of the repository, a file that shrank while read: changed in place, by hand).
      if (wrapped) return null;
      throw e;
    });
  }

  /** The record's text for a compare-and-write (recordTextFor): none for a file not a record. */
  private async comparableRecordText(path: string): Promise<string | undefined> {
    return (await this.recordTextFor(path)) ?? undefined;
  }

  /**
   * HeldActiveRecord.replaceIfExactly, the record's lock held (`fence`: its fencing check and the
   * caller's). A write that is renamed into place but whose directory could not be synced counts
   * as written: every reader sees it, and for a pin's intent the version's own rename syncs the
   * same directory next.
   */
  async replaceIfExactly(
    name: string,
    expected: ActiveRecord,
    next: ActiveRecord,
    fence: () => Promise<void>,
  ): Promise<boolean> {
    const dir = this.repository.modelPath(name);
    const now = await this.comparableRecordText(join(dir, ACTIVE_FILE));
    if (now !== recordText(expected)) return false;
    // The record never names a missing version, even for a moment (as replaceActive).
    if (!(await this.repository.listVersions(name)).includes(next.version)) return false;
    await this.writeRecord(name, recordText(next), fence);
    return true;
  }

  /**
   * Replaces the record of `name` with `text`, atomically (temporary file, rename), `fence`
   * checked immediately before the rename. Once renamed into place the record is written, synced
   * or not: the UnsyncedWrite is returned for the caller to report (or, where the next write
   * syncs the same directory, to let go), never thrown.
   */
  private async writeRecord(
    name: string,
    text: string,
    fence: () => Promise<void>,
  ): Promise<UnsyncedWrite | undefined> {
    try {
      await writeFileAtomically(
        this.repository.modelPath(name),
        ACTIVE_FILE,
        new TextEncoder().encode(text),
        false,
        fence,
      );
      return undefined;
    } catch (e) {
      if (e instanceof UnsyncedWrite) return e;
      throw e;
    }
  }

  /** writeActiveIf's read and write, the record's lock held (`fence`: its fencing check and the caller's). */
  async replaceActiveIf(
    name: string,
    version: number,
    expected: number | null,
    fence: () => Promise<void>,
    note?: string,
  ): Promise<ActiveIfWrite> {
    // A file that is not a record names no version; one that cannot be read decides nothing.
    const path = join(this.repository.modelPath(name), ACTIVE_FILE);
    const text = await this.comparableRecordText(path);
    let found: number | null = null;
    try {
      if (text !== undefined) found = this.parseActive(path, text).version;
    } catch {
      // not a record: names no version
    }
    if (found !== expected) return { written: false, found };
    const { record, unsynced, intentsReplaced } = await this.replaceActive(
      name,
      version,
      fence,
      note,
    );
    return {
      written: true,
      record,
      ...(unsynced ? { unsynced } : {}),
      ...(intentsReplaced ? { intentsReplaced } : {}),
    };
  }

  /**
   * `write` of the record of `version` under the record's lock; a failure of the storage (the
   * lock file, the record) is STORAGE_FULL or STORAGE_UNAVAILABLE, and nothing was written.
   */
  private async withRecordLock<T>(
    name: string,
    version: number,
    write: (fence: () => Promise<void>) => Promise<T>,
    stopWaiting?: () => void,
  ): Promise<T> {
    const dir = this.repository.modelPath(name);
    try {
      return await withActiveRecordLock(
        dir,
        this.files.label(join(dir, ACTIVE_RECORD_LOCK_FILE)),
        write,
        { maxWaitMs: this.activeRecordLockWaitMs, ...(stopWaiting && { stopWaiting }) },
      );
    } catch (e) {
      throw storageFailure(
        e,
        `cannot record version ${version} of "${name}" as active`,
        this.root,
        dir,
      );
    }
  }

  /**
   * writeActive's write, with the record's lock held: `fence` (its fencing check) immediately
   * before each change of the record.
   */
  async replaceActive(
    name: string,
    version: number,
    fence: () => Promise<void>,
    note?: string,
  ): Promise<ActiveWrite> {
    const path = join(this.repository.modelPath(name), ACTIVE_FILE);
    // Under the record's lock, which deleteVersion holds while it hides a version: present now, it
    // stays present until this write is done.
    if (!(await this.repository.listVersions(name)).includes(version)) {
      const deleted = (await this.repository.deletedVersions(name)).includes(version);
      throw versionNotFound(name, version, deleted ? 'it was deleted' : undefined);
    }
    const previous = await this.files
      .readText(path, MAX_ACTIVE_RECORD_BYTES)
      .catch(() => undefined);
    const intentsReplaced =
      previous === undefined
        ? []
        : // Only for a warning: a failure to tell decides nothing.
          await this.pendingIntents(name, previous, version).catch(() => []);
    const record: ActiveRecord = {
      version,
      updated_at: new Date().toISOString(),
      ...(note ? { note } : {}),
    };
    const text = recordText(record);
    const unsynced = await this.writeRecord(name, text, fence);
    let replaced: number | null = null;
    try {
      if (previous !== undefined) replaced = this.parseActive(path, previous).version;
    } catch {
      // not a usable record: nothing named a version
    }
    return {
      record,
      replaced,
      ...(unsynced ? { unsynced } : {}),
      ...(intentsReplaced.length > 0 ? { intentsReplaced } : {}),
    };
  }

  /**
   * The activations still to be finished that the record `text` holds, down its chain of pins:
   * each a pin's `pinned_publishing` whose staged directory was renamed into place (gone) and whose
   * version is there with the staged config.json — a dead publish's, which the cleanup would have
   * finished once it loads, or a live one's that could write neither its activation nor its
   * settlement — other than one of `except` (the activation being written). An activation written over them wins (an
   * operator's, or another recalibration's of the same parent): the caller logs them, where they
   * were dropped without a word (h288).
   */
  private async pendingIntents(name: string, text: string, except: number): Promise<DroppedPin[]> {
    const path = join(this.repository.modelPath(name), ACTIVE_FILE);
    const pending: DroppedPin[] = [];
    let versions: number[] | undefined;
    // The whole chain, as lastingRecord walks it to say what it drops (bounded: each pin is a
    // record of at most MAX_ACTIVE_RECORD_BYTES, holding the ones under it).
    for (let rest: string | undefined = text; rest !== undefined; ) {
      const pin = this.tryParseActive(path, rest);
      if (pin?.pinned_for === undefined || !isTemporaryName(pin.pinned_for)) break;
      const intent = pin.pinned_publishing;
      if (intent !== undefined && intent.version !== except) {
        versions ??= await this.repository.listVersions(name);
        const renamed = !(await exists(join(this.repository.modelPath(name), pin.pinned_for)));
        // The version under that number is the one staged (its config.json), as the cleanup
        // decides before finishing it; a version it cannot read is not named.
        const its =
          renamed &&
          versions.includes(intent.version) &&
          (await this.directoryIdentity(this.repository.versionPath(name, intent.version)).then(
            (held) => held?.config_sha256 === intent.config_sha256,
            () => false,
          ));
        if (its)
          pending.push({
            version: pin.version,
            pinnedFor: pin.pinned_for,
            publishing: intent.version,
          });
      }
      rest = pin.pinned_over;
    }
    return pending;
  }

  /**
   * removeAbandonedTemporaries's `settleFirst` for a model's directory: settles the record's pin
   * of a dead publisher (settleAbandonedPin, `abandoned` the staged directories about to go), and
   * returns the abandoned directories a pin on record still names — its undo failed (the record's
   * lock held elsewhere, a failing disk) — to keep: a dead publisher's staged directory is the one
   * sign that nothing was published, and a cleanup that removed it before a failed undo left the
   * pin for good (h271). When the record cannot be read after, every abandoned staged directory
   * is kept. `report`: what was settled, or the error that stopped it.
   */
  async settlePinsBeforeRemoving(
    name: string,
    abandoned: readonly string[],
    maxAgeMs: number,
    report: (outcome: { settled?: PinSettled; error?: unknown; dropped?: DroppedPin[] }) => void,
  ): Promise<readonly string[]> {
    const dropped: DroppedPin[] = [];
    try {
      const settled = await this.settleAbandonedPin(name, abandoned, maxAgeMs, (pins) =>
        dropped.push(...pins),
      );
      report({
        ...(settled !== undefined ? { settled } : {}),
        ...(dropped.length > 0 ? { dropped } : {}),
      });
    } catch (error) {
      report({ error, ...(dropped.length > 0 ? { dropped } : {}) });
    }
    const named = await this.pinnedDirectories(name).catch(() => undefined);
    return named === undefined
      ? abandoned.filter((p) => !p.includes(DELETION_LEFTOVER_MARK))
      : abandoned.filter((p) => named.has(p));
  }

  /** The staged directories the record's pins name: its pin's, and those in its pinned_over chain. */
  private async pinnedDirectories(name: string): Promise<Set<string>> {
    const dir = this.repository.modelPath(name);
    const path = join(dir, ACTIVE_FILE);
    const named = new Set<string>();
    let text = await this.recordTextFor(path);
    for (let depth = 0; text && depth < MAX_PINS_SETTLED; depth++) {
      const record = this.tryParseActive(path, text);
      if (record?.pinned_for === undefined) break;
      if (isTemporaryName(record.pinned_for)) named.add(join(dir, record.pinned_for));
      text = record.pinned_over;
    }
    return named;
  }

  /**
   * Settles the pin (a record with `pinned_for`, HeldActiveRecord.pin's) of a publish
   * whose process died, as that publish would have settled it:
   *
   * - its staged directory is among `removed`, the leftovers of dead processes about to be
   *   removed (settlePinsBeforeRemoving keeps it when this undo fails): the
   *   process died between the pin and the rename, so nothing was published, and the pin — which
   *   would keep every version published later from being served — is undone as the publish's own
   *   failure undoes it (restoreActive): the record it replaced is put back (`pinned_over`: one
   *   naming a version that is gone, an operator's choice to keep, or another dead publisher's
   *   pin, settled in turn in the same pass), else the record is removed and the highest
   *   version is served again, as before the pin. 'undone'.
   * - its staged directory is gone (renamed into place, or removed by an earlier cleanup), its
   *   writer is gone too (abandonedWriter: by the name `pinned_for`, the record's mtime for the
   *   leftover's) and the pin names the version it was publishing (`pinned_publishing`, written
   *   only when a conditional activation was about to be written in the same lock hold): when
   *   that version is there, is the directory that was staged (its config.json) and loads, the process
   *   died between the rename and the activation, and the activation is finished ('activated');
   *   otherwise nothing of it was published (or it cannot be served) and the pin is undone as
   *   above ('undone').
   * - a pin without `pinned_publishing` whose directory is gone and whose writer is gone, with a
   *   version above the one it pins there: its publish died after its rename and before making
   *   its pin a lasting record (a cleanup keeps the directory of a pin it could not undo), and the
   *   cleanup makes it one as that publish would have (lastingRecord: a dead recalibration's
   *   intent under it carried, and settled in the same pass). Without such a version the
   *   directory went without a rename, and the pin is undone ('undone').
   * - anything else is left: a live writer's pin (its publish may be between its rename and its
   *   activation now).
   *
   * Every write is made under the record's lock only while the record is still exactly that pin
   * (an operator's activation since stands). An undo that puts back another dead publisher's pin
   * (one pinned over the other) settles that one too, in the same pass: its staged directory,
   * removed by the same cleanup, would otherwise never be seen again (h269). `maxAgeMs`:
   * removeAbandonedTemporaries's.
   */
  private async settleAbandonedPin(
    name: string,
    removed: readonly string[],
    maxAgeMs = TEMPORARY_MAX_AGE_MS,
    /** Given the pins still to be settled that a pin made lasting dropped (lastingRecord). */
    onDropped?: (pins: DroppedPin[]) => void,
  ): Promise<PinSettled | undefined> {
    let outcome: PinSettled | undefined;
    // Bounded: each step settles one pin of the chain, and a chain is a few pins at most.
    for (let step = 0; step < MAX_PINS_SETTLED; step++) {
      const settled = await this.settleAbandonedPinOnce(name, removed, maxAgeMs);
      if (settled === undefined) break;
      if ('lasting' in settled) {
        if (settled.dropped.length > 0) onDropped?.(settled.dropped);
        continue; // a lasting record now, or a carried pin to settle next
      }
      outcome = settled;
      if ('activated' in settled) break;
    }
    return outcome;
  }

  /** One step of settleAbandonedPin: the pin the record is now. */
  private async settleAbandonedPinOnce(
    name: string,
    removed: readonly string[],
    maxAgeMs: number,
  ): Promise<PinSettled | { lasting: true; dropped: DroppedPin[] } | undefined> {
    const dir = this.repository.modelPath(name);
    const path = join(dir, ACTIVE_FILE);
    const record = await this.readActive(name).catch(() => undefined);
    const pinnedFor = record?.pinned_for;
    if (record === undefined || pinnedFor === undefined) return undefined;
    // The record put back keeps this one's age: a dead publisher's pin under it (put back by this
    // undo) is judged by it, as it would have been without this pin over it.
    const undo = async () =>
      (await this.restoreActive(
        name,
        record,
        record.pinned_over,
        await stat(path).then(
          (s) => s.mtimeMs,
          () => undefined,
        ),
      ))
        ? { undone: true as const }
        : undefined;
    const staged = join(dir, pinnedFor);
    if (removed.includes(staged)) return undo();
    const intent = record.pinned_publishing;
    // A name that is not a temporary's (edited by hand) is nobody's leftover: left alone.
    if (!isTemporaryName(pinnedFor)) return undefined;
    if (await exists(staged)) return undefined; // being written, or a leftover not yet removed
    const recordMtime = () => stat(path).then((s) => s.mtimeMs);
    if (!(await abandonedWriter(pinnedFor, recordMtime, maxAgeMs))) return undefined;
    if (intent === undefined) {
      // Its directory gone (a cleanup keeps that of a pin it could not undo), its writer gone: the
      // publish renamed its version into place and died before it made its pin a lasting record —
      // if a version above the one pinned is the staged directory (`pinned_staged`: its config.json).
      // Without one, the directory went without a rename (removed by hand, or its version removed
      // since): nothing of it is published, and the pin is undone as its failure would have undone
      // it (h279 R4: it was made lasting, and kept versions published later from being served as
      // the highest). Not "a version above the one pinned is there": a `train` (no lock) may have
      // published one meanwhile, or one may be broken (h282 R1). A pin written before
      // `pinned_staged` existed is judged by that older rule, the only one it allows: its publish's
      // version took the next free number, above the version pinned.
      const identity = record.pinned_staged;
      const renamed =
        identity !== undefined
          ? await this.publishedAs(name, record.version, identity)
          : (await this.repository.listVersions(name)).some((v) => v > record.version);
      if (!renamed) return undo();
      // Made one now, as it would have (settlePin): a dead recalibration's intent under it is
      // carried, not left where no cleanup looks (h271).
      const mtimeMs = await recordMtime().catch(() => undefined);
      const { next, carried, dropped } = await this.lastingRecord(
        name,
        record.version,
        record.pinned_over,
        'recorded as active by the cleanup: the publish that pinned it died after publishing',
      );
      const written = await this.withRecordLock(name, record.version, (fence) =>
        this.replaceIfExactly(name, record, next, fence),
      );
      if (written && carried) await this.keepRecordAge(name, mtimeMs);
      return written ? { lasting: true, dropped } : undefined;
    }
    // Its number and its config.json (a recalibration's carries its own provenance: its time and
    // its data's digest), not its inode: a rename keeps that on a local file system, not on every
    // one a repository lives on (overlayfs without xino, CIFS with noserverino, FUSE stores), where
    // a version published would be taken for another and its activation undone (h285). The
    // weights (megabytes) decide nothing here, the load check below does.
    // A version whose read fails (ESTALE, EIO) decides nothing now, as below; one whose files are
    // broken for good (config.json a directory, a link out) is not it (h286).
    const published = await this.directoryIdentity(
      this.repository.versionPath(name, intent.version),
    ).then(
      (held) => held?.config_sha256 === intent.config_sha256,
      (e: unknown) => {
        if (isBrokenCheckpoint(e)) return false;
        throw e;
      },
    );
    if (!published) return undo();
    // As the publish would have: a version that does not load is not activated (it would have
    // been deleted again; activated, a restarted server would serve nothing).
    const loads = await this.repository.loadVersion(name, intent.version).then(
      () => true,
      (e: unknown) => {
        if (isBrokenCheckpoint(e)) return false;
        throw e; // a read that failed may work the next time: nothing decided now
      },
    );
    if (!loads) return undo();
    const activation: ActiveRecord = {
      version: intent.version,
      updated_at: new Date().toISOString(),
      note: `activated by the cleanup: its publish (activate only if version ${record.version} is still active, which it was) died between publishing it and recording it as active`,
    };
    // Other dead publishes' activations under this one, which it replaces (h291 5).
    const intentsReplaced =
      record.pinned_over === undefined
        ? []
        : await this.pendingIntents(name, record.pinned_over, intent.version).catch(() => []);
    const written = await this.withRecordLock(name, intent.version, (fence) =>
      this.replaceIfExactly(name, record, activation, fence),
    );
    if (!written) return undefined;
    return {
      activated: intent.version,
      ...(intentsReplaced.length > 0 ? { intentsReplaced } : {}),
    };
  }
}
