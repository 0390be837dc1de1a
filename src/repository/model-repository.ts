import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, rename, rm, stat, unlink, utimes } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import {
  assembleCheckpoint,
  type Checkpoint,
  CONFIG_FILE,
  type LoadedCheckpoint,
  loadingWeights,
  METRICS_FILE,
  MODEL_NAME_PATTERN,
  type ModelConfig,
  networkForWeights,
  parseConfigFile,
  serializeCheckpoint,
  WEIGHTS_FILE,
  weightsExpectation,
} from '../checkpoint/index.js';
import {
  activeVersionDelete,
  describeLocations,
  errnoOf,
  errnoWords,
  isNormserveError,
  issuesToLocations,
  NormserveError,
  parseJsonText,
  safeParseWorded,
  versionNotFound,
} from '../errors/index.js';
import { finishYielding } from '../nn/index.js';
import {
  ACTIVE_RECORD_LOCK_FILE,
  removeStaleActiveRecordLock,
  withActiveRecordLock,
} from './active-record-lock.js';
import {
  fsyncPath,
  hostTag,
  stageDirectory,
  TEMP_PREFIX,
  type TemporaryWriter,
  temporaryName,
  temporaryWriter,
  writeFileAtomically,
} from './atomic-write.js';
import { removeStaleClaims } from './lock-claims.js';
import { releaseModelLockOf } from './model-lock.js';
import { isProcessAlive } from './process-alive.js';
import {
  inOwnPidNamespace,
  pidNamespaceStartedAtMs,
  processStartedAtMs,
  processStartTicks,
} from './process-start.js';
import { MAX_JSON_FILE_BYTES, RepositoryFiles } from './repository-files.js';
import { isStorageFailure, storageFailure, UnsyncedWrite } from './storage-failure.js';

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
/** Job records shared by the processes of a repository (hidden from the model scan). */
export const JOBS_DIR = '.jobs';
/** `<model>/.deleted-<v>`: version v was deleted and its number is retired. */
const TOMBSTONE_PREFIX = '.deleted-';
/** A version's directory name: a positive integer of at most 15 digits (a safe integer). */
export const VERSION_NAME_PATTERN = /^[1-9][0-9]{0,14}$/;

/** What writeActive wrote, and what the record it replaced named (read under the same lock). */
export interface ActiveWrite {
  record: ActiveRecord;
  /** The version the replaced record named; null when there was no usable record. */
  replaced: number | null;
  /** The record is written (every reader sees it) but its directory could not be synced. */
  unsynced?: UnsyncedWrite;
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
}

/** What writeActiveIf did: written, or not, and then what the record named. */
export type ActiveIfWrite =
  | { written: true; record: ActiveRecord; unsynced?: UnsyncedWrite }
  | { written: false; found: number | null };

/**
 * A version whose files are written and synced under a temporary name in its model's directory
 * (stageVersion), hidden from every reader until `publish` renames it into place.
 */
export interface StagedVersion {
  /**
   * Renames it into place as the next free version number (publishVersion's rename and its
   * failures); `beforeRename`, given the number chosen, then `fence` run immediately before each
   * try of the rename. A failure before the rename discards it, unless `keepOnFailure` (its
   * caller's pin names it: removed once the pin is undone).
   */
  publish(
    fence?: () => Promise<void>,
    beforeRename?: (version: number) => Promise<void>,
    keepOnFailure?: boolean,
  ): Promise<PublishedVersion>;
  /** Removes it, unpublished. */
  discard(): Promise<void>;
  /** Its temporary directory's name in the model's directory. */
  readonly tempName: string;
  /** The SHA-256 of its config.json, in hex (as versionDigests gives it once published). */
  readonly configSha256: string;
  /** What the cleanup before staging did to a dead publisher's pin (settleAbandonedPin). */
  readonly pinSettled?: { undone: true } | { activated: number };
  /** Pins still to be settled that the cleanup before staging dropped (DroppedPin), to log. */
  readonly pinsDropped?: DroppedPin[];
}

/**
 * The writes a caller makes while it holds a model's active-record lock (withActiveRecord): each
 * checks the lock's fencing immediately before it writes, and a failure of the storage is
 * STORAGE_FULL or STORAGE_UNAVAILABLE naming what was not done.
 */
export interface HeldActiveRecord {
  /** Publishes a staged version of this model (StagedVersion.publish, fenced by the lock too). */
  publish(
    staged: StagedVersion,
    fence?: () => Promise<void>,
    beforeRename?: (version: number) => Promise<void>,
    keepOnFailure?: boolean,
  ): Promise<PublishedVersion>;
  /**
   * Replaces the record with `next` only if it is still exactly `expected` (its text as written),
   * and `next.version` is there; whether it did. A pin's rewrites (its intent, and dropping it).
   */
  replaceIfExactly(
    expected: ActiveRecord,
    next: ActiveRecord,
    fence?: () => Promise<void>,
  ): Promise<boolean>;
  /**
   * Pins the version served before publishing one that must not be served as the highest (a
   * publish without activation, or with one only if a version is still active): when the record
   * on disk calls for it (pinFor), writes a record naming that version, `pinnedFor` the staged
   * directory's name; undefined when no pin is needed. Decided here, under the lock, from the file
   * every process shares, not from any process's last poll (h267).
   */
  pin(
    servedNow: () => Promise<number | undefined>,
    pinnedFor: string,
    note: string,
  ): Promise<WrittenPin | undefined>;
  /**
   * Undoes `pin` (its publish published nothing): puts back the record it replaced, or removes it
   * when there was none, only if the record is still exactly that pin; whether it did.
   */
  unpin(pin: WrittenPin): Promise<boolean>;
  /**
   * Replaces `pin` (its publish published a version, not activated) with a lasting record naming
   * the same version, `note` its note, only if the record is still exactly that pin; whether it
   * did (settlePin), and the pins still to be settled it dropped then, past MAX_PINS_SETTLED
   * pins down the chain (lastingRecord), for the caller to log.
   */
  settlePin(pin: WrittenPin, note: string): Promise<{ written: boolean; dropped: DroppedPin[] }>;
  /** deleteVersion, the lock already held: a version published in this hold that does not load. */
  deleteVersion(version: number): Promise<{ unsynced?: UnsyncedWrite }>;
  /** writeActive's write, the lock already held. */
  writeActive(version: number, note?: string): Promise<ActiveWrite>;
  /** writeActiveIf's read and write, the lock already held. */
  writeActiveIf(
    version: number,
    expected: number | null,
    note?: string,
    fence?: () => Promise<void>,
  ): Promise<ActiveIfWrite>;
}

/** What publishVersion published. */
export interface PublishedVersion {
  version: number;
  /** The version is published (every reader sees it) but its model directory was not synced. */
  unsynced?: UnsyncedWrite;
}

/**
 * The text of an active-version record as written (compared by restoreActive), its keys in the
 * schema's order: a record read back and parsed then gives the same text, however the object
 * written was put together (a pin carried over by settlePin had its keys in another order, and
 * the cleanup's compare-and-write never matched it: h269).
 */
const recordText = (record: ActiveRecord): string =>
  `${JSON.stringify(activeRecordSchema.parse(record))}\n`;

const isMissing = (e: unknown): boolean => errnoOf(e) === 'ENOENT';

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
 * A model repository on disk, laid out as Triton's: `<root>/<model>/<version>/` with positive
 * integer version directories holding `config.json`, `model.safetensors` and `metrics.json`.
 * Names starting with a dot (temporaries) and non-numeric entries are ignored. Every change is
 * published atomically (see atomic-write.ts), so several processes may share one repository.
 */
export interface ModelRepositoryOptions {
  /**
   * How long a write of the active-version record waits for the record's lock before failing
   * with ACTIVE_RECORD_BUSY (default ACTIVE_RECORD_LOCK_WAIT_MS, 60 s; tests shorten it).
   */
  activeRecordLockWaitMs?: number | undefined;
}

export class ModelRepository {
  readonly root: string;
  private readonly files: RepositoryFiles;
  private readonly activeRecordLockWaitMs: number | undefined;

  constructor(root: string, options: ModelRepositoryOptions = {}) {
    this.root = root;
    this.files = new RepositoryFiles(root);
    this.activeRecordLockWaitMs = options.activeRecordLockWaitMs;
  }

  modelPath(name: string): string {
    return join(this.root, name);
  }

  /**
   * Releases the recalibration lock of `model` if job `owner` still holds it: what any process
   * does for a job it finds abandoned (see service/job-registry.ts).
   */
  async releaseLockOf(model: string, owner: string): Promise<void> {
    if (MODEL_NAME_PATTERN.test(model)) await releaseModelLockOf(this.modelPath(model), owner);
  }

  versionPath(name: string, version: number): string {
    return join(this.root, name, String(version));
  }

  /**
   * The SHA-256 of a version's config.json and model.safetensors as they are on disk now (a
   * recalibrated version names its parent by these); null for a file that is not there.
   */
  async versionDigests(
    name: string,
    version: number,
  ): Promise<{ config_sha256: string | null; weights_sha256: string | null }> {
    const dir = this.versionPath(name, version);
    const [config, weights] = await Promise.all(
      [CONFIG_FILE, WEIGHTS_FILE].map((f) => this.files.sha256(join(dir, f))),
    );
    return { config_sha256: config ?? null, weights_sha256: weights ?? null };
  }

  /** Model directories (valid names, not hidden). */
  async listModels(): Promise<string[]> {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(this.root, { withFileTypes: true });
    } catch (e) {
      const code = errnoOf(e);
      const why =
        code === 'ENOENT'
          ? 'does not exist'
          : code === 'ENOTDIR'
            ? 'is not a directory'
            : code === 'EACCES' || code === 'EPERM'
              ? `cannot be read by this process (${errnoWords(e)})`
              : undefined;
      if (why !== undefined) {
        throw new NormserveError(
          'REPOSITORY_ERROR',
          `model repository ${this.root} ${why} (MODEL_REPOSITORY)`,
          { cause: e },
        );
      }
      throw e;
    }
    return entries
      .filter((e) => e.isDirectory() && MODEL_NAME_PATTERN.test(e.name))
      .map((e) => e.name)
      .sort();
  }

  /**
   * Whether `name` is a model directory of the repository (a valid, non-hidden name; not a
   * symbolic link, as listModels sees it).
   */
  async hasModel(name: string): Promise<boolean> {
    if (!MODEL_NAME_PATTERN.test(name)) return false;
    try {
      return (await lstat(this.modelPath(name))).isDirectory();
    } catch (e) {
      if (isMissing(e) || errnoOf(e) === 'ENOTDIR') return false;
      throw e;
    }
  }

  /**
   * Whether `<root>/<name>` is a model's directory: one holding version directories. What makes a
   * directory a model's (not its name: a model may be named `123`) for the CLIs' paths.
   */
  async isModelDirectory(name: string): Promise<boolean> {
    const versions = await this.listVersions(name).catch((e: unknown) => {
      if (errnoOf(e) === 'ENOTDIR') return [];
      throw e;
    });
    return versions.length > 0;
  }

  /** Version numbers present for a model, ascending; [] when the model directory is absent. */
  async listVersions(name: string): Promise<number[]> {
    try {
      const entries = await readdir(this.modelPath(name), { withFileTypes: true });
      return entries
        .filter((e) => e.isDirectory() && VERSION_NAME_PATTERN.test(e.name))
        .map((e) => Number(e.name))
        .sort((a, b) => a - b);
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
  }

  /**
   * Reads and validates one version; errors name the file relative to the repository
   * (`digits/2/config.json: …`) and the broken rule. Files must lie inside the repository and be
   * regular files. What is read, in order, each step only once the one before passed: config.json
   * (schema, nesting, shape chain, name), the weights' length prefix and header (the format's
   * rules against the file's size, then the tensors the config's layers hold: names, kinds,
   * shapes), and only then the weights' data, exactly the bytes those tensors need.
   */
  async loadVersion(name: string, version: number): Promise<LoadedCheckpoint> {
    const dir = this.versionPath(name, version);
    const source = this.files.label(dir);
    const missing = (file: string) =>
      new NormserveError('CHECKPOINT_MISMATCH', `${source}: ${file} is missing`);
    const configBytes = await this.files.readBytes(join(dir, CONFIG_FILE));
    if (configBytes === undefined) throw missing(CONFIG_FILE);
    const config = parseConfigFile(configBytes, `${source}/${CONFIG_FILE}`);
    if (config.name !== name) {
      throw new NormserveError(
        'MODEL_CONFIG_INVALID',
        `${source}/${CONFIG_FILE}: name "${config.name}" does not match the model directory "${name}"`,
      );
    }
    const weightsSource = `${source}/${WEIGHTS_FILE}`;
    const [weights, metrics] = await Promise.all([
      this.files.readSafetensors(
        join(dir, WEIGHTS_FILE),
        (layout) => networkForWeights(config, layout, weightsSource),
        weightsExpectation(config, `${source}/${CONFIG_FILE}`),
      ),
      // Metrics are informational: one that cannot be read (too large, a link out) is left out.
      this.files.readBytes(join(dir, METRICS_FILE)).catch(() => undefined),
    ]);
    if (weights === undefined) throw missing(WEIGHTS_FILE);
    // In slices, giving the event loop back between them: a server loading a large version goes
    // on answering for the others meanwhile (bench/load-stall.ts).
    const network = await finishYielding(
      loadingWeights(weights.checked, weights.layout, weights.data, weightsSource),
    );
    return assembleCheckpoint(config, network, metrics);
  }

  /**
   * Publishes a checkpoint as the next free version of its model, atomically; concurrent
   * publishers (other processes or replicas) never collide. Returns the new version; when the
   * model directory could not be synced after the rename that published it, with `unsynced`.
   * `fence` (the fencing check of a lock the caller holds: a recalibration's) runs immediately
   * before the rename that publishes; if it throws, nothing was published. A write that fails
   * before that rename publishes nothing: STORAGE_FULL or STORAGE_UNAVAILABLE for a failure of
   * the storage (storageFailure).
   */
  async publishVersion(
    checkpoint: Checkpoint,
    fence?: () => Promise<void>,
  ): Promise<PublishedVersion> {
    return (await this.stageVersion(checkpoint)).publish(fence);
  }

  /**
   * Writes a checkpoint's files under a temporary name in its model's directory, synced, for
   * publishing later (StagedVersion.publish: publishVersion in two steps, so that a caller can
   * publish holding the active-record lock without holding it while the files are written).
   * STORAGE_FULL or STORAGE_UNAVAILABLE, nothing left, when the storage refuses a write.
   */
  async stageVersion(checkpoint: Checkpoint): Promise<StagedVersion> {
    const name = checkpoint.config.name;
    const failure = (e: unknown) =>
      storageFailure(e, `cannot publish a version of "${name}"`, this.root, this.modelPath(name));
    const files = serializeCheckpoint(checkpoint);
    // What an interrupted publish of a dead process left here (a CLI killed mid-publish), by the
    // rule of a server's start-up: a repository written only by CLIs is cleaned as it is used.
    // What cannot be removed stays hidden, and the publish goes on (removeTemporaries).
    let pinSettled: { undone: true } | { activated: number } | undefined;
    let pinsDropped: DroppedPin[] = [];
    await removeAbandonedTemporaries(this.modelPath(name), TEMPORARY_MAX_AGE_MS, (abandoned) =>
      this.settlePinsBeforeRemoving(
        name,
        abandoned,
        TEMPORARY_MAX_AGE_MS,
        ({ settled, dropped }) => {
          pinSettled = settled;
          pinsDropped = dropped ?? [];
        },
      ),
    );
    const configSha256 = createHash('sha256').update(files.get(CONFIG_FILE)!).digest('hex');
    let staged: Awaited<ReturnType<typeof stageDirectory>>;
    try {
      staged = await stageDirectory(this.modelPath(name), files);
    } catch (e) {
      throw failure(e);
    }
    return {
      discard: () => staged.discard(),
      tempName: staged.name,
      configSha256,
      ...(pinSettled !== undefined ? { pinSettled } : {}),
      ...(pinsDropped.length > 0 ? { pinsDropped } : {}),
      publish: async (fence, beforeRename, keepOnFailure) => {
        try {
          const chosen = await staged.publish(
            async () => String(await this.nextVersion(name)),
            undefined,
            async (version) => {
              await beforeRename?.(Number(version));
              await fence?.();
            },
            keepOnFailure,
          );
          return { version: Number(chosen) };
        } catch (e) {
          if (e instanceof UnsyncedWrite)
            return { version: Number(basename(e.written)), unsynced: e };
          throw failure(e);
        }
      },
    };
  }

  /**
   * Runs `work` holding the active-version record's lock of `name` (the lock writeActive,
   * writeActiveIf and deleteVersion take), with the writes it may make under it (HeldActiveRecord):
   * a recalibration publishes its version and activates it in one hold, so that no deletion, in
   * any process, removes the version between the two. ACTIVE_RECORD_BUSY, `work` not run, when
   * the lock stays held longer than activeRecordLockWaitMs; a failure of the storage taking the
   * lock is STORAGE_FULL or STORAGE_UNAVAILABLE naming `operation` (`cannot publish a version of
   * "digits"`), `work` not run. `stopWaiting` ends the wait for a busy lock by throwing
   * (ActiveRecordWait), `work` not run.
   */
  async withActiveRecord<T>(
    name: string,
    work: (held: HeldActiveRecord) => Promise<T>,
    operation: string,
    stopWaiting?: () => void,
  ): Promise<T> {
    const dir = this.modelPath(name);
    return withActiveRecordLock(
      dir,
      this.files.label(join(dir, ACTIVE_RECORD_LOCK_FILE)),
      (recordFence) => {
        const fences = (fence?: () => Promise<void>) => async () => {
          await fence?.();
          await recordFence();
        };
        const recording = <R>(version: number, write: () => Promise<R>): Promise<R> =>
          write().catch((e: unknown) => {
            throw storageFailure(
              e,
              `cannot record version ${version} of "${name}" as active`,
              this.root,
              dir,
            );
          });
        return work({
          publish: (staged, fence, beforeRename, keepOnFailure) =>
            staged.publish(fences(fence), beforeRename, keepOnFailure),
          replaceIfExactly: (expected, next, fence) =>
            this.replaceIfExactly(name, expected, next, fences(fence)).catch((e: unknown) => {
              throw storageFailure(
                e,
                `cannot rewrite the pin of version ${expected.version} of "${name}" in ${ACTIVE_FILE}`,
                this.root,
                dir,
              );
            }),
          pin: (servedNow, pinnedFor, note) =>
            this.writePin(name, servedNow, pinnedFor, note, recordFence).catch((e: unknown) => {
              throw storageFailure(
                e,
                `cannot record the version served of "${name}" as active`,
                this.root,
                dir,
              );
            }),
          unpin: (pin) =>
            this.putBack(name, pin.record, pin.previous, recordFence, pin.previousMtimeMs).catch(
              (e: unknown) => {
                throw storageFailure(
                  e,
                  `cannot undo the pin of version ${pin.record.version} of "${name}" in ${ACTIVE_FILE}`,
                  this.root,
                  dir,
                );
              },
            ),
          settlePin: (pin, note) =>
            this.settlePin(name, pin, note, recordFence).catch((e: unknown) => {
              throw storageFailure(
                e,
                `cannot rewrite the pin of version ${pin.record.version} of "${name}" in ${ACTIVE_FILE}`,
                this.root,
                dir,
              );
            }),
          deleteVersion: (version) =>
            this.deleteHeld(name, version, recordFence).catch((e: unknown) => {
              throw this.deletionFailure(name, version, e);
            }),
          writeActive: (version, note) =>
            recording(version, () => this.replaceActive(name, version, recordFence, note)),
          writeActiveIf: (version, expected, note, fence) =>
            recording(version, () =>
              this.replaceActiveIf(name, version, expected, fences(fence), note),
            ),
        });
      },
      { maxWaitMs: this.activeRecordLockWaitMs, ...(stopWaiting && { stopWaiting }) },
    ).catch((e: unknown) => {
      throw storageFailure(e, operation, this.root, dir);
    });
  }

  /**
   * The number publishVersion would give the next version of `name` now: one past the highest
   * version present or deleted. Numbers of deleted versions are never given out again: a process
   * that still holds the old version under that number would otherwise serve different weights
   * under it.
   */
  async nextVersion(name: string): Promise<number> {
    const used = [...(await this.listVersions(name)), ...(await this.deletedVersions(name))];
    return used.reduce((highest, v) => Math.max(highest, v), 0) + 1;
  }

  /**
   * A version's config.json, parsed as loadVersion parses it; undefined when it is missing or
   * cannot be read (a caller comparing versions, not loading one).
   */
  async readConfig(name: string, version: number): Promise<ModelConfig | undefined> {
    const dir = this.versionPath(name, version);
    try {
      const bytes = await this.files.readBytes(join(dir, CONFIG_FILE));
      return bytes === undefined
        ? undefined
        : parseConfigFile(bytes, `${this.files.label(dir)}/${CONFIG_FILE}`);
    } catch {
      return undefined;
    }
  }

  /**
   * The active-version record of a model; undefined when there is none. A record that cannot be
   * read or is not a record is REPOSITORY_ERROR naming the file relative to the repository.
   */
  async readActive(name: string): Promise<ActiveRecord | undefined> {
    const path = join(this.modelPath(name), ACTIVE_FILE);
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
  private async putBack(
    name: string,
    written: ActiveRecord,
    previous: string | undefined,
    fence: () => Promise<void>,
    /** The mtime `previous` had (WrittenPin's previousMtimeMs), given back with it. */
    previousMtimeMs?: number,
  ): Promise<boolean> {
    const dir = this.modelPath(name);
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
    await utimes(join(this.modelPath(name), ACTIVE_FILE), when, when).catch(() => undefined);
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
   * be read.
   */
  async pinFor(
    name: string,
    servedNow: () => Promise<number | undefined>,
  ): Promise<{ version: number; over?: string } | undefined> {
    const path = join(this.modelPath(name), ACTIVE_FILE);
    const text = await this.recordTextFor(path);
    if (text === null) return undefined; // not a record: served as it was (swap)
    const record = text === undefined ? undefined : this.tryParseActive(path, text);
    if (text !== undefined && record === undefined) return undefined; // not a record either
    const present =
      record !== undefined && (await this.listVersions(name)).includes(record.version);
    if (record !== undefined && record.pinned_for === undefined && present) return undefined;
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
  private async settlePin(
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
   * settles them then (h282 R5: dropped silently, a dead recalibration's intent among them).
   */
  private async lastingRecord(
    name: string,
    version: number,
    over: string | undefined,
    note: string,
  ): Promise<{ next: ActiveRecord; carried: boolean; dropped: DroppedPin[] }> {
    const plain: ActiveRecord = { version, updated_at: new Date().toISOString(), note };
    const path = join(this.modelPath(name), ACTIVE_FILE);
    const dropped: DroppedPin[] = [];
    /** `text` as a pin of the chain (a temporary's name), and whether it is still to be settled. */
    const pinOf = async (text: string | undefined) => {
      const pin = text === undefined ? undefined : this.tryParseActive(path, text);
      // Not a pin (a plain record, an operator's, not a record) or one edited by hand: the chain
      // ends; the publish's plain record replaces it, as it always did.
      if (pin?.pinned_for === undefined || !isTemporaryName(pin.pinned_for)) return undefined;
      const pending =
        pin.pinned_publishing !== undefined ||
        (await exists(join(this.modelPath(name), pin.pinned_for)));
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
          if (found === undefined) break;
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
      if (found === undefined) return undefined;
      const inner = await carry(found.pin.pinned_over, depth + 1);
      if (!found.pending) return inner;
      return { ...found.pin, version, pinned_over: recordText(inner ?? plain) };
    };
    const next = await carry(over, 0);
    return next === undefined
      ? { next: plain, carried: false, dropped }
      : { next, carried: true, dropped };
  }

  /** HeldActiveRecord.pin, the record's lock held (`fence`: its fencing check). */
  private async writePin(
    name: string,
    servedNow: () => Promise<number | undefined>,
    pinnedFor: string,
    note: string,
    fence: () => Promise<void>,
  ): Promise<WrittenPin | undefined> {
    const pin = await this.pinFor(name, servedNow);
    if (pin === undefined) return undefined;
    const replacedMtimeMs =
      pin.over === undefined
        ? undefined
        : await stat(join(this.modelPath(name), ACTIVE_FILE)).then(
            (s) => s.mtimeMs,
            () => undefined,
          );
    const staged = await this.directoryIdentity(join(this.modelPath(name), pinnedFor));
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
        `cannot pin version ${pin.version} of "${name}" before publishing: ${this.files.label(join(this.modelPath(name), ACTIVE_FILE))} (${Buffer.byteLength(pin.over ?? '')} bytes) is too large to keep under a pin; activate a version (POST /v1/models/${name}/versions/<v>:activate) and publish again`,
      );
    if (!(await this.listVersions(name)).includes(pin.version))
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
    const above = (await this.listVersions(name)).filter((v) => v > pinned).reverse();
    let unread: unknown;
    for (const version of above) {
      try {
        const held = await this.directoryIdentity(this.versionPath(name, version));
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
  private async replaceIfExactly(
    name: string,
    expected: ActiveRecord,
    next: ActiveRecord,
    fence: () => Promise<void>,
  ): Promise<boolean> {
    const dir = this.modelPath(name);
    const now = await this.comparableRecordText(join(dir, ACTIVE_FILE));
    if (now !== recordText(expected)) return false;
    // The record never names a missing version, even for a moment (as replaceActive).
    if (!(await this.listVersions(name)).includes(next.version)) return false;
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
        this.modelPath(name),
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
  private async replaceActiveIf(
    name: string,
    version: number,
    expected: number | null,
    fence: () => Promise<void>,
    note?: string,
  ): Promise<ActiveIfWrite> {
    // A file that is not a record names no version; one that cannot be read decides nothing.
    const path = join(this.modelPath(name), ACTIVE_FILE);
    const text = await this.comparableRecordText(path);
    let found: number | null = null;
    try {
      if (text !== undefined) found = this.parseActive(path, text).version;
    } catch {
      // not a record: names no version
    }
    if (found !== expected) return { written: false, found };
    const { record, unsynced } = await this.replaceActive(name, version, fence, note);
    return { written: true, record, ...(unsynced ? { unsynced } : {}) };
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
    const dir = this.modelPath(name);
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
  private async replaceActive(
    name: string,
    version: number,
    fence: () => Promise<void>,
    note?: string,
  ): Promise<ActiveWrite> {
    const path = join(this.modelPath(name), ACTIVE_FILE);
    // Under the record's lock, which deleteVersion holds while it hides a version: present now, it
    // stays present until this write is done.
    if (!(await this.listVersions(name)).includes(version)) {
      const deleted = (await this.deletedVersions(name)).includes(version);
      throw versionNotFound(name, version, deleted ? 'it was deleted' : undefined);
    }
    const previous = await this.files
      .readText(path, MAX_ACTIVE_RECORD_BYTES)
      .catch(() => undefined);
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
    return { record, replaced, ...(unsynced ? { unsynced } : {}) };
  }

  /**
   * Removes a version that is not the active one: first renamed to a hidden name (it disappears at
   * once and whole for every reader), then deleted. The record is read and the version hidden
   * holding the record's lock, as every activation writes it (writeActive): so a deletion and an
   * activation of the same version, in any processes, are ordered, and exactly one takes effect —
   * the activation that came first makes this ACTIVE_VERSION_DELETE (nothing deleted), the
   * deletion that came first makes the activation VERSION_NOT_FOUND (nothing written). A busy
   * lock is ACTIVE_RECORD_BUSY and a failure of the storage before the rename STORAGE_FULL or
   * STORAGE_UNAVAILABLE, nothing deleted; after it the version is deleted: a model directory
   * that could not be synced is returned (`unsynced`), files that could not be removed are a
   * hidden leftover, removed by the next cleanup (removeTemporaries, DELETION_LEFTOVER_MARK).
   */
  async deleteVersion(name: string, version: number): Promise<{ unsynced?: UnsyncedWrite }> {
    const dir = this.modelPath(name);
    return withActiveRecordLock(
      dir,
      this.files.label(join(dir, ACTIVE_RECORD_LOCK_FILE)),
      (fence) => this.deleteHeld(name, version, fence),
      {
        maxWaitMs: this.activeRecordLockWaitMs,
        undone: `version ${version} of "${name}" was not deleted`,
      },
    ).catch((e: unknown) => {
      throw this.deletionFailure(name, version, e);
    });
  }

  /**
   * deleteVersion, the record's lock held (`fence`: its fencing check); a failure before the
   * rename that hides the version is thrown as it came (deletionFailure words it).
   */
  private async deleteHeld(
    name: string,
    version: number,
    fence: () => Promise<void>,
  ): Promise<{ unsynced?: UnsyncedWrite }> {
    const dir = this.modelPath(name);
    const hidden = join(dir, `${temporaryName()}${DELETION_LEFTOVER_MARK}${version}`);
    if (!(await this.listVersions(name)).includes(version)) {
      throw versionNotFound(name, version);
    }
    // A record that cannot be read names no version (the highest is served): the caller
    // judged that one.
    if ((await this.readActive(name).catch(() => undefined))?.version === version) {
      throw activeVersionDelete(name, version);
    }
    await fence();
    // The tombstone first: from now on `version` is never published again (publishVersion).
    await writeFileAtomically(dir, `${TOMBSTONE_PREFIX}${version}`, new Uint8Array());
    await fence();
    try {
      await rename(this.versionPath(name, version), hidden);
    } catch (e) {
      if (isMissing(e)) throw versionNotFound(name, version);
      throw e;
    }
    let unsynced: UnsyncedWrite | undefined;
    try {
      await fsyncPath(dir);
    } catch (e) {
      unsynced = new UnsyncedWrite(dir, e);
    }
    // Hidden already: files that cannot be removed now are a leftover for the next cleanup.
    await rm(hidden, { recursive: true, force: true }).catch(() => undefined);
    return unsynced ? { unsynced } : {};
  }

  /** A deletion's failure before its rename, as its caller reports it: nothing was deleted. */
  private deletionFailure(name: string, version: number, e: unknown): unknown {
    const failure = storageFailure(
      e,
      `cannot delete version ${version} of "${name}"`,
      this.root,
      this.modelPath(name),
    );
    if (!(failure instanceof NormserveError) || failure.code !== 'STORAGE_FULL') return failure;
    // The operator's way to free space fails when space is what is missing: say why the
    // deletion writes at all, and the way around it.
    return new NormserveError(
      'STORAGE_FULL',
      `${failure.message}; nothing was deleted. ${deletionNeedsSpace(name, version)}`,
      { cause: e, extra: failure.extra },
    );
  }

  /** Versions that were deleted (their tombstones `.deleted-<v>`), ascending. */
  async deletedVersions(name: string): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(this.modelPath(name));
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
    return names
      .filter(
        (n) =>
          n.startsWith(TOMBSTONE_PREFIX) &&
          VERSION_NAME_PATTERN.test(n.slice(TOMBSTONE_PREFIX.length)),
      )
      .map((n) => Number(n.slice(TOMBSTONE_PREFIX.length)))
      .sort((a, b) => a - b);
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
  private async settlePinsBeforeRemoving(
    name: string,
    abandoned: readonly string[],
    maxAgeMs: number,
    report: (outcome: {
      settled?: { undone: true } | { activated: number };
      error?: unknown;
      dropped?: DroppedPin[];
    }) => void,
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
    const dir = this.modelPath(name);
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
  ): Promise<{ undone: true } | { activated: number } | undefined> {
    let outcome: { undone: true } | { activated: number } | undefined;
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
  ): Promise<
    { undone: true } | { activated: number } | { lasting: true; dropped: DroppedPin[] } | undefined
  > {
    const dir = this.modelPath(name);
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
          : (await this.listVersions(name)).some((v) => v > record.version);
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
    const published = await this.directoryIdentity(this.versionPath(name, intent.version)).then(
      (held) => held?.config_sha256 === intent.config_sha256,
      (e: unknown) => {
        if (isBrokenCheckpoint(e)) return false;
        throw e;
      },
    );
    if (!published) return undo();
    // As the publish would have: a version that does not load is not activated (it would have
    // been deleted again; activated, a restarted server would serve nothing).
    const loads = await this.loadVersion(name, intent.version).then(
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
    const written = await this.withRecordLock(name, intent.version, (fence) =>
      this.replaceIfExactly(name, record, activation, fence),
    );
    return written ? { activated: intent.version } : undefined;
  }

  /**
   * Deletes temporary leftovers of interrupted writes: those of a dead process on this host at
   * once, those of other hosts (replicas sharing the volume) only when older than `maxAgeMs`, since
   * their writer may still be running; and the claims (model-lock.ts) a process left by dying
   * while it held one, judged by the lock's own rule (removeStaleClaims). Returns the removed
   * paths, and those that could not be removed (a read-only repository, a leftover another user
   * owns) with the error: a leftover is hidden from every reader, so one that stays harms nothing
   * and stops nobody (a server starts).
   */
  async removeTemporaries(maxAgeMs = TEMPORARY_MAX_AGE_MS): Promise<TemporariesRemoval> {
    const dirs = [
      this.root,
      join(this.root, JOBS_DIR),
      ...(await this.listModels()).map((m) => this.modelPath(m)),
    ];
    const total: TemporariesRemoval = {
      removed: [],
      failed: [],
      pinsUndone: [],
      pinActivations: [],
      pinsDropped: [],
      pinsUnsettled: [],
    };
    for (const dir of dirs) {
      const model =
        dir === this.root || dir === join(this.root, JOBS_DIR) ? undefined : basename(dir);
      // Every model's record, not only where a leftover is removed: a publish that died after
      // its rename left no leftover, only its pin (settleAbandonedPin).
      const { removed, failed } = await removeAbandonedTemporaries(
        dir,
        maxAgeMs,
        model === undefined
          ? undefined
          : (abandoned) =>
              this.settlePinsBeforeRemoving(model, abandoned, maxAgeMs, (outcome) => {
                const { settled, error, dropped } = outcome;
                if (dropped !== undefined) total.pinsDropped.push({ model, pins: dropped });
                if (settled && 'undone' in settled) total.pinsUndone.push(model);
                if (settled && 'activated' in settled)
                  total.pinActivations.push({ model, version: settled.activated });
                if (error !== undefined)
                  total.pinsUnsettled.push({
                    model,
                    error: error instanceof Error ? error.message : String(error),
                  });
              }),
      );
      total.removed.push(...removed);
      total.failed.push(...failed);
      // Claims first: a dead process may have left the record lock's own claim (killed while
      // releasing the lock), which would make the lock's removal below find its claim busy.
      try {
        total.removed.push(...(await removeStaleClaims(dir)));
      } catch (error) {
        total.failed.push({
          path: dir,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      if (model === undefined) continue;
      try {
        const lock = await removeStaleActiveRecordLock(dir);
        if (lock !== undefined) total.removed.push(lock);
      } catch (error) {
        total.failed.push({
          path: join(dir, ACTIVE_RECORD_LOCK_FILE),
          error: error instanceof Error ? error.message : String(error),
        });
      }
    }
    return total;
  }
}

/**
 * Why a deletion writes before it frees anything, and what an operator on a full disk does instead.
 * The lock file orders the deletion against activations in every process sharing the repository
 * (a lock's identity is its content, THE PROTOCOL in model-lock.ts, so it cannot be an empty
 * file); the tombstone is empty and needs no data block, only the lock's few bytes do.
 */
function deletionNeedsSpace(name: string, version: number): string {
  const hidden = `${name}/.tmp-removed-${version}`;
  return `A deletion first takes ${name}/${ACTIVE_RECORD_LOCK_FILE} (a file of a few bytes, which orders it against activations in every process sharing the repository) and writes an empty tombstone, ${name}/${TOMBSTONE_PREFIX}${version} (the number is never given out again). Free a few kilobytes another way and retry, or, in the repository, once ${name}/${ACTIVE_FILE} does not name version ${version} and nobody is activating it: mv ${name}/${version} ${hidden} && touch ${name}/${TOMBSTONE_PREFIX}${version} && rm -rf ${hidden}`;
}

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
  pinActivations: { model: string; version: number }[];
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

/** How old a temporary of another host must be to be taken as abandoned (its writer may live). */
const TEMPORARY_MAX_AGE_MS = 3_600_000;
/** The most pins one settleAbandonedPin settles, one put back by the undo of the one before. */
const MAX_PINS_SETTLED = 8;

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
const DELETION_LEFTOVER_MARK = '-deleted-';

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
async function abandonedWriter(
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

/**
 * Deletes the temporaries (temporaryName's) in `dir` that their writer abandoned: those of a
 * process of this host that is dead, or that is not the process now running with its pid
 * (pidReused), those of another pid namespace of this host written before this one began
 * (writtenBeforeNamespace), those older than `maxAgeMs` whose writer cannot be told alive: of
 * another host or pid namespace, or named without its start, those of a live writer of this host older than a day
 * (LIVE_WRITER_MAX_AGE_MS), and every version deleteVersion hid (DELETION_LEFTOVER_MARK). A
 * missing `dir` holds none. Never throws: what it cannot list or remove is returned in `failed`.
 */
async function removeAbandonedTemporaries(
  dir: string,
  maxAgeMs = TEMPORARY_MAX_AGE_MS,
  /**
   * Given the abandoned temporaries about to be removed (their paths), settles what they are
   * evidence of first, and returns those to keep (settlePinsBeforeRemoving).
   */
  settleFirst?: (abandoned: readonly string[]) => Promise<readonly string[]>,
): Promise<TemporariesRemoval> {
  const result: TemporariesRemoval = {
    removed: [],
    failed: [],
    pinsUndone: [],
    pinActivations: [],
    pinsDropped: [],
    pinsUnsettled: [],
  };
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

/**
 * A model named alone (`--model digits`) where the checkout's repository has it: the path it
 * likely meant (newcomer review of 2026-12-04). A path is what every program takes, so the name
 * alone was looked up in the current directory.
 */
async function bundledHint(path: string): Promise<string> {
  if (path.includes('/') || path.startsWith('.')) return '';
  const candidate = join(BUNDLED_REPOSITORY, path);
  const found = await stat(candidate).then(
    (s) => s.isDirectory(),
    () => false,
  );
  return found ? ` (did you mean ${candidate}? a model is named by its directory's path)` : '';
}

/** The repository of the bundled models, relative to the checkout (where npm run runs). */
const BUNDLED_REPOSITORY = 'models';

/** A path that does not exist is reported as such, not as a version missing its files. */
async function checkIsDirectory(path: string, clean: string): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(clean)).isDirectory();
  } catch (e) {
    if (!isMissing(e)) throw e;
    const parent = dirname(clean);
    const versions = VERSION_NAME_PATTERN.test(basename(clean))
      ? await new ModelRepository(dirname(parent)).listVersions(basename(parent))
      : [];
    throw new NormserveError(
      'MODEL_NOT_FOUND',
      `${path}: no such directory${versions.length > 0 ? ` (${dirname(path)} has versions ${versions.join(', ')})` : await bundledHint(path)}`,
    );
  }
  if (!isDirectory) {
    throw new NormserveError(
      'MODEL_NOT_FOUND',
      `${path}: not a directory (expected <repository>/<model> or <repository>/<model>/<version>)`,
    );
  }
}

/**
 * Whether a directory given by path is a version directory (`<repo>/<name>/<version>`) rather
 * than a model directory: its name is a version number and it holds no version directories of
 * its own. Decided by what it holds, not by its name alone: a model may be named `123`, and
 * `<repo>/123` (holding 1/, 2/) is that model's directory.
 */
async function isVersionDirectory(clean: string): Promise<boolean> {
  if (!VERSION_NAME_PATTERN.test(basename(clean))) return false;
  return !(await new ModelRepository(dirname(clean)).isModelDirectory(basename(clean)));
}

/** Errors of a version whose files are there and read, but are no checkpoint this build loads. */
const BROKEN_CHECKPOINT_CODES: ReadonlySet<string> = new Set([
  'CHECKPOINT_MISMATCH',
  'MODEL_CONFIG_INVALID',
  'SAFETENSORS_INVALID',
]);

/**
 * Whether a version's load failure is its files' (they will fail the same way the next time), not
 * a read that failed: the codes above, and a REPOSITORY_ERROR with no errno behind it (a file that
 * is no regular file, a link out of the repository, a file over its size bound: h252), where one
 * with an errno (EIO, EACCES, EMFILE: `cannot be read`) may read the next time.
 */
export const isBrokenCheckpoint = (e: unknown): boolean =>
  e instanceof NormserveError &&
  (BROKEN_CHECKPOINT_CODES.has(e.code) ||
    (e.code === 'REPOSITORY_ERROR' && errnoOf(e.cause) === undefined));

/** A model's config.json declares its format first: `"format": "normserve.model/v1"`. */
const MODEL_FORMAT_DECLARED = /"format"\s*:\s*"normserve\.model\//;

/**
 * Which of a version's files `dir` holds, if any: model.safetensors, or a config.json that is a
 * model's, by the format it declares, damaged or not (a training config of that name, in a
 * directory given as --out, is none: h250). Read only up to the bound of any JSON file.
 */
async function holdsVersionFiles(dir: string): Promise<string | undefined> {
  if ((await stat(join(dir, WEIGHTS_FILE)).catch(() => undefined))?.isFile()) return WEIGHTS_FILE;
  const config = join(dir, CONFIG_FILE);
  const info = await stat(config).catch(() => undefined);
  if (!info?.isFile() || info.size > MAX_JSON_FILE_BYTES) return undefined;
  const text = await readFile(config, 'utf8').catch(() => '');
  return MODEL_FORMAT_DECLARED.test(text) ? CONFIG_FILE : undefined;
}

/**
 * What the directory at `path` is of a model, for a CLI told to write a repository there (train's
 * --out): a version's (it holds config.json or model.safetensors), a model's (a version directory
 * in it holds them), or neither (undefined; also when it does not exist). By what it holds, not
 * its name: a model may be named `123`, and a repository may hold such a model.
 */
export async function modelContentAt(
  path: string,
): Promise<{ kind: 'version'; file: string } | { kind: 'model'; version: string } | undefined> {
  const file = await holdsVersionFiles(path);
  if (file !== undefined) return { kind: 'version', file };
  const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory() || !VERSION_NAME_PATTERN.test(entry.name)) continue;
    if ((await holdsVersionFiles(join(path, entry.name))) !== undefined)
      return { kind: 'model', version: entry.name };
  }
  return undefined;
}

/**
 * Reads a model directory given by path: a version directory (`<repo>/<name>/<version>`), or a
 * model directory (`<repo>/<name>`), which resolves to its active version (the recorded one, else
 * the highest); `given` says which it was. Used by the CLIs.
 */
export async function loadModelDirectory(path: string): Promise<{
  version: number;
  name: string;
  checkpoint: LoadedCheckpoint;
  root: string;
  /** What the path named: one version's directory, or the model's (its active version). */
  given: 'version' | 'model';
  /**
   * Set when the version opened is not the one the directory seems to name, as the server would
   * choose it (docs/model-format.md, `active-version.json`): the record names a deleted version,
   * or higher versions fail to load, so the highest that loads was taken. Say it to the user.
   */
  versionNote?: string;
}> {
  const clean = resolve(path);
  const base = basename(clean);
  await checkIsDirectory(path, clean);
  if (await isVersionDirectory(clean)) {
    const modelDir = dirname(clean);
    const name = basename(modelDir);
    const root = dirname(modelDir);
    const version = Number(base);
    const repository = new ModelRepository(root);
    return {
      version,
      name,
      checkpoint: await repository.loadVersion(name, version),
      root,
      given: 'version',
    };
  }
  const name = base;
  const root = dirname(clean);
  const repository = new ModelRepository(root);
  const versions = await repository.listVersions(name);
  if (versions.length === 0) {
    // `--model models` for `--model models/digits` is the likeliest slip: name what is in there.
    const inside = new ModelRepository(clean);
    const models: string[] = [];
    for (const model of await inside.listModels().catch(() => [])) {
      if (await inside.isModelDirectory(model)) models.push(model);
    }
    throw new NormserveError(
      'MODEL_NOT_FOUND',
      `${path}: no model version directories (expected ${path}/<version>/)${models.length > 0 ? `; it is a model repository: give one of its models, e.g. ${join(path, models[0]!)}` : ''}`,
    );
  }
  // The version an operator activated; without a record, the highest that loads. A record naming
  // a version whose directory is gone (deleted: nothing writes a record before its version is in
  // place) counts as none, as a starting server does (ModelRegistry.swap), so that a CLI opens the
  // version the server serves; an unreadable record is refused (readActive throws), and a version
  // the record names that fails to load is that failure, as the server then serves nothing.
  const active = await repository.readActive(name);
  if (active && versions.includes(active.version)) {
    return {
      version: active.version,
      name,
      checkpoint: await repository.loadVersion(name, active.version),
      root,
      given: 'model',
    };
  }
  const failed: { version: number; error: unknown }[] = [];
  for (const version of [...versions].reverse()) {
    let checkpoint: LoadedCheckpoint;
    try {
      checkpoint = await repository.loadVersion(name, version);
    } catch (error) {
      // Only a version whose files are broken is passed over: a read that failed (EIO, EMFILE,
      // EACCES: REPOSITORY_ERROR) may work the next time, and a CLI that went on with an older
      // version would recalibrate or fine-tune it, and a recalibration publish and activate it,
      // over the newest (second reader, h250).
      if (!isBrokenCheckpoint(error)) throw error;
      failed.push({ version, error });
      continue;
    }
    const notes = [
      ...(active
        ? [`${path}/${ACTIVE_FILE} names version ${active.version}, which does not exist`]
        : []),
      ...failed.map(({ error }) => (error instanceof Error ? error.message : String(error))),
    ];
    const skipped = failed.length > 0 ? `, the highest that loads` : ', the highest';
    return {
      version,
      name,
      checkpoint,
      root,
      given: 'model',
      ...(notes.length > 0
        ? {
            versionNote: `${notes.join('; ')}; using version ${version}${skipped}, as the server does${active ? ' until a version is activated' : ''}`,
          }
        : {}),
    };
  }
  // None loads: the highest one's failure, as before (the server serves none of them).
  throw failed[0]!.error;
}
