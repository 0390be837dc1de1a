import { createHash } from 'node:crypto';
import { lstat, readdir, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
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
  errnoOf,
  errnoWords,
  NormserveError,
  versionNotFound,
} from '../errors/index.js';
import { finishYielding } from '../nn/index.js';
import { DELETION_LEFTOVER_MARK, TEMPORARY_MAX_AGE_MS } from './abandoned-writer.js';
import {
  ACTIVE_FILE,
  type ActiveIfWrite,
  type ActiveRecord,
  ActiveRecordStore,
  type ActiveWrite,
  type DroppedPin,
  type PinSettled,
  type WrittenPin,
} from './active-record.js';
import {
  ACTIVE_RECORD_LOCK_FILE,
  removeStaleActiveRecordLock,
  withActiveRecordLock,
} from './active-record-lock.js';
import { fsyncPath, stageDirectory, temporaryName, writeFileAtomically } from './atomic-write.js';
import { removeStaleClaims } from './lock-claims.js';
import { releaseModelLockOf } from './model-lock.js';
import { isMissing, RepositoryFiles } from './repository-files.js';
import { storageFailure, UnsyncedWrite } from './storage-failure.js';
import {
  nothingRemoved,
  removeAbandonedTemporaries,
  type TemporariesRemoval,
} from './temporaries-removal.js';

/** Job records shared by the processes of a repository (hidden from the model scan). */
export const JOBS_DIR = '.jobs';
/** `<model>/.deleted-<v>`: version v was deleted and its number is retired. */
const TOMBSTONE_PREFIX = '.deleted-';
/** A version's directory name: a positive integer of at most 15 digits (a safe integer). */
export const VERSION_NAME_PATTERN = /^[1-9][0-9]{0,14}$/;

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
  readonly pinSettled?: PinSettled;
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
   * every process shares, not from any process's last poll (h267). `intentFor`: a conditional
   * publish's parent, whose plain record is pinned over too (pinFor's).
   */
  pin(
    servedNow: () => Promise<number | undefined>,
    pinnedFor: string,
    note: string,
    intentFor?: number,
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
  /** The models' active-version records and their pins (active-record.ts). */
  private readonly activeRecord: ActiveRecordStore;

  constructor(root: string, options: ModelRepositoryOptions = {}) {
    this.root = root;
    this.files = new RepositoryFiles(root);
    this.activeRecordLockWaitMs = options.activeRecordLockWaitMs;
    this.activeRecord = new ActiveRecordStore(root, this.files, this.activeRecordLockWaitMs, this);
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
    let pinSettled: PinSettled | undefined;
    let pinsDropped: DroppedPin[] = [];
    await removeAbandonedTemporaries(this.modelPath(name), TEMPORARY_MAX_AGE_MS, (abandoned) =>
      this.activeRecord.settlePinsBeforeRemoving(
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
            this.activeRecord
              .replaceIfExactly(name, expected, next, fences(fence))
              .catch((e: unknown) => {
                throw storageFailure(
                  e,
                  `cannot rewrite the pin of version ${expected.version} of "${name}" in ${ACTIVE_FILE}`,
                  this.root,
                  dir,
                );
              }),
          pin: (servedNow, pinnedFor, note, intentFor) =>
            this.activeRecord
              .writePin(name, servedNow, pinnedFor, note, recordFence, intentFor)
              .catch((e: unknown) => {
                throw storageFailure(
                  e,
                  `cannot record the version served of "${name}" as active`,
                  this.root,
                  dir,
                );
              }),
          unpin: (pin) =>
            this.activeRecord
              .putBack(name, pin.record, pin.previous, recordFence, pin.previousMtimeMs)
              .catch((e: unknown) => {
                throw storageFailure(
                  e,
                  `cannot undo the pin of version ${pin.record.version} of "${name}" in ${ACTIVE_FILE}`,
                  this.root,
                  dir,
                );
              }),
          settlePin: (pin, note) =>
            this.activeRecord.settlePin(name, pin, note, recordFence).catch((e: unknown) => {
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
            recording(version, () =>
              this.activeRecord.replaceActive(name, version, recordFence, note),
            ),
          writeActiveIf: (version, expected, note, fence) =>
            recording(version, () =>
              this.activeRecord.replaceActiveIf(name, version, expected, fences(fence), note),
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
   * The active-version record of a model; undefined when there is none (ActiveRecordStore's
   * readActive).
   */
  async readActive(name: string): Promise<ActiveRecord | undefined> {
    return this.activeRecord.readActive(name);
  }

  /** Records the active version, under the record's lock (ActiveRecordStore's writeActive). */
  async writeActive(name: string, version: number, note?: string): Promise<ActiveWrite> {
    return this.activeRecord.writeActive(name, version, note);
  }

  /**
   * Records `version` as active only if the record names `expected` now (ActiveRecordStore's
   * writeActiveIf).
   */
  async writeActiveIf(
    name: string,
    version: number,
    expected: number | null,
    note?: string,
    options: { fence?: () => Promise<void>; stopWaiting?: () => void } = {},
  ): Promise<ActiveIfWrite> {
    return this.activeRecord.writeActiveIf(name, version, expected, note, options);
  }

  /**
   * Puts back the record `written` replaced, only if the record is still exactly `written`
   * (ActiveRecordStore's restoreActive).
   */
  async restoreActive(
    name: string,
    written: ActiveRecord,
    previous: string | undefined,
    previousMtimeMs?: number,
  ): Promise<boolean> {
    return this.activeRecord.restoreActive(name, written, previous, previousMtimeMs);
  }

  /**
   * The version a publish that must not be served as the highest pins first, and the text of the
   * record the pin replaces (ActiveRecordStore's pinFor).
   */
  async pinFor(
    name: string,
    servedNow: () => Promise<number | undefined>,
  ): Promise<{ version: number; over?: string } | undefined> {
    return this.activeRecord.pinFor(name, servedNow);
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
    const total = nothingRemoved();
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
              this.activeRecord.settlePinsBeforeRemoving(model, abandoned, maxAgeMs, (outcome) => {
                const { settled, error, dropped } = outcome;
                if (dropped !== undefined) total.pinsDropped.push({ model, pins: dropped });
                if (settled && 'undone' in settled) total.pinsUndone.push(model);
                if (settled && 'activated' in settled)
                  total.pinActivations.push({
                    model,
                    version: settled.activated,
                    ...(settled.intentsReplaced
                      ? { intentsReplaced: settled.intentsReplaced }
                      : {}),
                  });
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
