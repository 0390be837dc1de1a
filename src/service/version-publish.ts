import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Checkpoint } from '../checkpoint/index.js';
import { isNormserveError, NormserveError } from '../errors/index.js';
import {
  ACTIVE_FILE,
  type ActiveRecord,
  type DroppedPin,
  droppedPinsWords,
  type HeldActiveRecord,
  intentsReplacedWords,
  isStorageFailure,
  type ModelRepository,
  refusedByStorage,
  type StagedVersion,
  storageFailure,
  type UnsyncedWrite,
  type WrittenPin,
} from '../repository/index.js';
import type { Log } from './logger.js';
import { MAX_FRESH_LOADS } from './read-retries.js';
import {
  type AvailableVersion,
  closeCompiled,
  type FailedVersion,
  isAvailable,
  type ModelSnapshot,
  type ServedVersion,
} from './served-version.js';

/** What `publish` did: the new version, and whether it is the active one. */
export interface PublishResult {
  version: number;
  activated: boolean;
  /**
   * With `ifActive`, when the condition failed: the version the active-version record named
   * instead (null: no usable record). With activationBusy: the version it names (read without
   * the lock).
   */
  activeFound?: number | null;
  /**
   * With `activate`, when the activation was not written because the active-version record's
   * lock stayed held (ACTIVE_RECORD_BUSY) or the storage failed (STORAGE_FULL,
   * STORAGE_UNAVAILABLE): that error. The version is published all the same (on disk, listed,
   * loaded), so this is the caller's to report, not a failure of `publish`.
   */
  activationBusy?: ActivationNotWritten;
  /**
   * The version is published (and, if `activated`, active) but the model directory could not be
   * synced after a rename (storageWarning's message says what happened): reported, not thrown.
   */
  storageWarning?: NormserveError;
}

/** `publish`'s options (ModelRegistry.publish says what each does). */
export interface PublishOptions {
  ifActive?: number;
  fence?: () => Promise<void>;
  jobId?: string;
  stopWaiting?: () => void;
}

/**
 * A pinning publish refused because which version every process serves cannot be told here
 * (servedEverywhere, publish's servedNow): `why`, and what to do before the last resort.
 */
function servedUnknown(name: string, why: string, remedy: string): NormserveError {
  return new NormserveError(
    'STORAGE_UNAVAILABLE',
    `cannot tell which version of "${name}" is served: ${why}; nothing was pinned — ${remedy}, or activate a version (POST /v1/models/${name}/versions/<v>:activate)`,
  );
}

/** An activation that was not written, after which a published version stays published. */
export type ActivationNotWritten = NormserveError & {
  readonly code: 'ACTIVE_RECORD_BUSY' | 'STORAGE_FULL' | 'STORAGE_UNAVAILABLE';
};

// isStorageFailure of a NormserveError is its code being STORAGE_FULL or STORAGE_UNAVAILABLE (an
// errno is read from `code`, which a NormserveError holds a catalogue code in).
const isActivationNotWritten = (e: unknown): e is ActivationNotWritten =>
  isNormserveError(e) && (e.code === 'ACTIVE_RECORD_BUSY' || isStorageFailure(e));

/** Says that nothing was published because the version served could not be pinned first. */
function nothingPublished(e: ActivationNotWritten, version: number | undefined): NormserveError {
  return new NormserveError(
    e.code,
    `${e.message}, so no version was published (the current version${version === undefined ? '' : ` ${version}`} must be recorded as active first)`,
    { retryAfterSeconds: e.retryAfterSeconds, cause: e, extra: { ...e.extra } },
  );
}

/**
 * What a publish asks of the registry it publishes for (ModelRegistry answers, each call made
 * through it).
 */
export interface PublishingRegistry {
  readonly repository: ModelRepository;
  readonly log: Log;
  /** The model's snapshot now, if it has one. */
  served(name: string): ModelSnapshot | undefined;
  loadVersion(name: string, version: number): Promise<ServedVersion>;
  refreshModel(name: string, preloaded?: ServedVersion): Promise<ModelSnapshot>;
  warnIntentsReplaced(name: string, version: number, replaced?: DroppedPin[]): void;
  unsyncedWarning(
    name: string,
    version: number,
    unsynced: UnsyncedWrite,
    happened: string,
  ): NormserveError;
  announce(name: string): Promise<void>;
}

/**
 * One call of ModelRegistry.publish (which says what it does: the staging, the hold of the
 * record's lock, the pin, `ifActive`, `fence`), read top to bottom: `run` stages the files, then
 * pins, publishes and activates in one hold of the record's lock (publishAndActivate), or without
 * it when it cannot be had, and serves what it published. What the steps share is this object's.
 */
export class VersionPublish {
  private readonly registry: PublishingRegistry;
  private readonly repository: ModelRepository;
  private readonly log: Log;
  private readonly checkpoint: Checkpoint;
  private readonly activate: boolean;
  private readonly note: string | undefined;
  private readonly options: PublishOptions;
  private readonly name: string;
  private readonly conditional: boolean;
  private readonly pinning: boolean;
  private staged!: StagedVersion;
  private pin: WrittenPin | undefined;
  /** A pin written and then not undone (unpin): its staged directory is kept for the cleanup. */
  private pinLeft = false;
  /** Set once renamed into place; `published` once loaded back too. */
  private renamed: number | undefined;
  private published: { version: number; loaded: AvailableVersion } | undefined;
  private unsynced: UnsyncedWrite | undefined;
  private result: PublishResult | undefined;
  /** Why the version renamed into place does not load, when it does not. */
  private loadFailure: string | undefined;
  /** What became of that version, when the hold deleted it again. */
  private removedAgain: string | undefined;

  constructor(
    registry: PublishingRegistry,
    checkpoint: Checkpoint,
    activate: boolean,
    note: string | undefined,
    options: PublishOptions,
  ) {
    this.registry = registry;
    this.repository = registry.repository;
    this.log = registry.log;
    this.checkpoint = checkpoint;
    this.activate = activate;
    this.note = note;
    this.options = options;
    this.name = checkpoint.config.name;
    this.conditional = activate && options.ifActive !== undefined;
    this.pinning = !activate || this.conditional;
  }

  async run(): Promise<PublishResult> {
    const { stopWaiting } = this.options;
    // Written before anything else, so a full disk fails here, with nothing written at all.
    this.staged = await this.repository.stageVersion(this.checkpoint);
    // The cleanup before staging settled a dead publisher's pin: said as the start-up's is.
    const settled = this.staged.pinSettled;
    if (settled !== undefined && 'activated' in settled)
      this.log.warn(
        {
          model: this.name,
          version: settled.activated,
          ...(settled.intentsReplaced ? { intentsReplaced: settled.intentsReplaced } : {}),
        },
        `activated a version whose publish died between publishing it and recording it as active (its pin named it)${intentsReplacedWords(this.name, settled.intentsReplaced)}`,
      );
    else if (settled !== undefined)
      this.log.info({ model: this.name }, 'undid the pin of a publish that died before publishing');
    if (this.staged.pinsDropped) this.warnPinsDropped(this.name, this.staged.pinsDropped);
    let locked = false;
    try {
      try {
        await this.repository.withActiveRecord(
          this.name,
          (held) => {
            locked = true;
            return this.publishAndActivate(held);
          },
          `cannot publish a version of "${this.name}"`,
          stopWaiting,
        );
      } catch (e) {
        if (locked || !isActivationNotWritten(e)) throw e;
        // Another writer keeps the record's lock, or its file cannot be written (a full disk).
        // Without a pin the version would be served as the highest: nothing is published then;
        // otherwise the work is published all the same, without the lock, and not activated.
        if (this.pinning) {
          const needed = await this.repository
            .pinFor(this.name, () => this.servedNow())
            .catch(() => ({ version: undefined }));
          if (needed !== undefined) throw nothingPublished(e, needed.version);
        }
        await this.publishAndActivate();
        if (this.activate)
          this.result = { version: this.published!.version, activated: false, activationBusy: e };
      }
    } catch (e) {
      // Not renamed: nothing published. A pin that could not be undone keeps its staged directory.
      if (this.renamed === undefined && !this.pinLeft) await this.staged.discard();
      this.published?.loaded.compiled.close();
      if (this.renamed !== undefined && this.loadFailure !== undefined) {
        // Without the hold (the unlocked path), deleted now, the record's lock free again.
        const version = this.renamed;
        const removed =
          this.removedAgain ??
          (await this.repository.deleteVersion(this.name, version).then(
            () => 'it was deleted again',
            (d: unknown) =>
              `it could not be deleted again (${d instanceof Error ? d.message : String(d)})`,
          ));
        await this.registry.refreshModel(this.name).catch(() => undefined);
        throw new NormserveError(
          'REPOSITORY_ERROR',
          `published version ${version} does not load, ${removed}: ${this.loadFailure}`,
        );
      }
      throw e;
    }
    const { version, loaded } = this.published!;
    let outcome = this.result!;
    try {
      if (outcome.activationBusy) {
        // Published, only not activated: loaded and listed below like any other version.
        const found = await this.repository.readActive(this.name).catch(() => undefined);
        outcome = { ...outcome, activeFound: found?.version ?? null };
      }
      const snapshot = await this.registry.refreshModel(this.name, loaded);
      // Without a record the highest version is served: an unconditional activation that could
      // not be recorded may be in effect all the same.
      if (outcome.activationBusy && snapshot.active === version)
        outcome = { version, activated: true };
      if (this.unsynced) {
        outcome.storageWarning = this.registry.unsyncedWarning(
          this.name,
          version,
          this.unsynced,
          `version ${version} of "${this.name}" was published${outcome.activated ? ' and is active' : ''}`,
        );
      }
    } finally {
      // Released when the snapshot does not hold it: the refresh failed, or the version was
      // deleted (another replica's retention job) before it listed the versions (h294 3).
      if (this.registry.served(this.name)?.versions.get(version) !== loaded)
        loaded.compiled.close();
      // The version is on disk whatever this process made of it: the others read it now.
      await this.registry.announce(this.name);
    }
    return outcome;
  }

  /** Pins if needed, renames, loads back and (holding the record's lock) activates. */
  private async publishAndActivate(held?: HeldActiveRecord): Promise<void> {
    if (held && this.pinning) {
      try {
        this.pin = await held.pin(
          () => this.servedNow(),
          this.staged.tempName,
          this.conditional
            ? 'pinned before publishing a version activated only if this one is still active'
            : 'pinned before publishing an inactive version',
          // Over a plain record naming the parent too: the intent below needs a pin to go in.
          this.conditional ? this.options.ifActive : undefined,
        );
      } catch (e) {
        throw isActivationNotWritten(e) ? nothingPublished(e, undefined) : e;
      }
      // Nothing is published yet: a pin a crash may undo is not one to publish on (one over the
      // parent's own record may be: undone, it leaves that record).
      if (this.pin?.unsynced && !this.pin.intentOnly) {
        const { version } = this.pin.record;
        const failure = storageFailure(
          this.pin.unsynced,
          `cannot record version ${version} of "${this.name}" as active`,
          this.repository.root,
        );
        await this.unpin(held, failure);
        throw isActivationNotWritten(failure) ? nothingPublished(failure, version) : failure;
      }
    }
    let done: Awaited<ReturnType<HeldActiveRecord['publish']>>;
    try {
      done = held
        ? await held.publish(
            this.staged,
            this.options.fence,
            this.conditional ? (version) => this.recordIntent(held, version) : undefined,
            // A pin names the staged directory: removed once the pin is undone.
            this.pin !== undefined,
          )
        : await this.staged.publish(this.options.fence);
    } catch (e) {
      if (held) await this.unpin(held, e); // not renamed: nothing published, no pin needed
      throw e;
    }
    const { version } = done;
    // Renamed into place: from here on the version is published, whatever fails after.
    this.renamed = version;
    this.unsynced = done.unsynced;
    this.log.info(
      {
        model: this.name,
        version,
        ...(this.options.jobId !== undefined ? { job: this.options.jobId } : {}),
      },
      'version published',
    );
    let activated = false;
    try {
      const loaded = await this.registry.loadVersion(this.name, version);
      if (!isAvailable(loaded)) {
        this.loadFailure = loaded.reason;
        // Deleted again in this hold (a tombstone keeps its number from being given out
        // again, as for any deletion), so a failed publish leaves no FAILED version behind for
        // every process to list; with it gone, so is the reason for a pin.
        if (held)
          this.removedAgain = await held.deleteVersion(version).then(
            () => 'it was deleted again',
            (d: unknown) =>
              `it could not be deleted again (${d instanceof Error ? d.message : String(d)})`,
          );
        throw new NormserveError(
          'REPOSITORY_ERROR',
          `published version ${version} does not load: ${loaded.reason}`,
        );
      }
      this.published = { version, loaded };
      this.result = { version, activated: this.activate };
      if (!held || !this.activate) return;
      try {
        if (this.conditional) {
          const written = await held.writeActiveIf(
            version,
            this.options.ifActive!,
            this.note,
            this.options.fence,
          );
          if (!written.written)
            this.result = { version, activated: false, activeFound: written.found };
          else {
            activated = true;
            this.unsynced ??= written.unsynced;
            this.registry.warnIntentsReplaced(this.name, version, written.intentsReplaced);
          }
        } else {
          const written = await held.writeActive(version, this.note);
          this.unsynced ??= written.unsynced;
          this.registry.warnIntentsReplaced(this.name, version, written.intentsReplaced);
        }
      } catch (e) {
        if (!isActivationNotWritten(e)) throw e;
        this.result = { version, activated: false, activationBusy: e };
      }
    } finally {
      if (held && !activated) {
        if (this.removedAgain === 'it was deleted again') await this.unpin(held, this.loadFailure);
        else await this.settlePin(held, version);
      }
    }
  }

  /**
   * The version served now, which a pin names: asked only when the record on disk calls for a
   * pin, and then under the record's lock, so that it is what every process serves when the
   * pin lands (a version published meanwhile by a `train`, which takes no lock, included: h269).
   * Not only this process's view: a version above it that this process failed to read (an
   * EMFILE once, kept FAILED while its files are unchanged) is served by every other process,
   * and a pin naming the version served here would roll them all back (servedEverywhere).
   */
  private async servedNow(): Promise<number | undefined> {
    const snapshot = await this.registry
      .refreshModel(this.name)
      .catch(() => this.registry.served(this.name));
    const served = snapshot && (await this.servedEverywhere(snapshot));
    // None here while the model has versions: another process may serve one, which a publish
    // without a pin would roll back by serving this version as the highest (h288).
    if (served === undefined && (await this.repository.listVersions(this.name)).length > 0)
      throw servedUnknown(
        this.name,
        'none of its versions loads in this process, and other processes sharing the repository may be serving one',
        'make one loadable here and retry, publish this one activated',
      );
    return served;
  }

  /**
   * The version a publish's pin names when the record on disk does not name one that is there
   * (HeldActiveRecord.pin's `servedNow`): the one every process sharing the repository serves —
   * the highest that loads — not only this process's view of it. The versions above the one served
   * here that this process failed to read (`readFailed`: an EMFILE once, kept FAILED until a
   * scan's retry or a change of its files) are loaded again, from the highest down, the highest MAX_FRESH_LOADS of
   * them whatever their number (h282 R2: more of them refused every pinning publish without a
   * try, until a restart): one that loads now is served here too, and named; one whose files turn
   * out broken (or that does not compile) is passed over (kept as that failure, not
   * loaded again the next time); one that still cannot be read here may be what every other
   * process serves, and the publish is refused (STORAGE_UNAVAILABLE, nothing pinned, nothing
   * published) rather than pin a version that rolls every other replica back (h279 R3) — as it is
   * when all of those turned out broken and more are below them, not tried by this publish (the
   * next one tries them). The rule the CLIs follow to open the version a server would serve
   * (loadModelDirectory).
   *
   * Run under the record's lock (the pin is decided from the disk there): its reloads hold the
   * lock for at most MAX_FRESH_LOADS loads of a version, and a writer in another process waits for
   * it up to its bound (activeRecordLockWaitMs, 60 s) before failing with ACTIVE_RECORD_BUSY.
   */
  private async servedEverywhere(snapshot: ModelSnapshot): Promise<number | undefined> {
    const { name, active } = snapshot;
    const unread = [...snapshot.versions.values()]
      .filter(
        (v): v is FailedVersion =>
          v.state === 'FAILED' &&
          v.readFailed === true &&
          (active === undefined || v.version > active),
      )
      .sort((a, b) => b.version - a.version);
    const refused = (version: number, reason: string) =>
      servedUnknown(
        name,
        `version ${version} cannot be read here (${reason}), and other processes sharing the repository may be serving it`,
        "make it readable by this process (the storage, the files' permissions, this process's memory) and retry",
      );
    for (const { version } of unread.slice(0, MAX_FRESH_LOADS)) {
      const loaded = await this.registry.loadVersion(name, version);
      if (isAvailable(loaded)) {
        // Closed only when the snapshot does not hold it (as publish does after its refresh): a
        // refresh that rejects after swapping it in leaves it served (h282 R4).
        const held = () => this.registry.served(name)?.versions.get(version) === loaded;
        const refreshed = await this.registry.refreshModel(name, loaded).catch((e: unknown) => {
          if (!held()) closeCompiled(loaded);
          throw e;
        });
        // Not on disk any more (deleted meanwhile): not served, and released.
        if (!held()) closeCompiled(loaded);
        return refreshed.active;
      }
      if (loaded.readFailed) throw refused(version, loaded.reason);
      // Its files are broken (or it does not compile): no process serves it; the next one down,
      // this failure kept in place of the one that may have passed (not loaded again each time).
      await this.registry.refreshModel(name, loaded).catch(() => undefined);
    }
    const untried = unread[MAX_FRESH_LOADS];
    if (untried !== undefined)
      throw refused(
        untried.version,
        `${untried.reason}; the ${MAX_FRESH_LOADS} above it were loaded again by this publish, and it was not`,
      );
    return active;
  }

  /**
   * Under the publish's hold, just before each try of the rename (given the number chosen):
   * the pin names the version it is about to publish, so that a death between the rename and
   * the activation (publishAndActivate's) is finished by the cleanup instead of leaving the pin for good
   * (settleAbandonedPin). Only when that activation will be written: the pin names `ifActive`
   * (it was written for this publish, so the condition holds, and nothing else writes the
   * record while this hold lasts). With the staged config.json's digest (a recalibration's is
   * its own: its provenance): the cleanup tells by it that the version under that number is this
   * one, not another publisher's (a `train` takes no lock). The inode is recorded too, not relied
   * on: a rename keeps it on a local file system only.
   */
  private async recordIntent(held: HeldActiveRecord, version: number): Promise<void> {
    if (this.pin === undefined || this.pin.record.version !== this.options.ifActive) return;
    const dir = join(this.repository.modelPath(this.name), this.staged.tempName);
    let inode: string;
    try {
      inode = (await stat(dir, { bigint: true })).ino.toString();
    } catch (e) {
      // Over the parent's own record the intent is best effort (WrittenPin.intentOnly); the
      // rename that follows meets any lasting failure of the directory itself.
      if (this.pin.intentOnly && refusedByStorage(e)) return;
      throw e;
    }
    const next: ActiveRecord = {
      ...this.pin.record,
      pinned_publishing: { version, inode, config_sha256: this.staged.configSha256 },
    };
    // fenced as the rename is: LOCK_LOST here publishes nothing, the pin undone as for any
    // failure before the rename. A pin over the parent's own plain record that the storage
    // refuses to rewrite goes on without its intent, as before such pins (WrittenPin.intentOnly).
    const written = await held
      .replaceIfExactly(this.pin.record, next, this.options.fence)
      .catch((e: unknown) => {
        if (this.pin?.intentOnly && refusedByStorage(e)) return false;
        throw e;
      });
    if (written) this.pin = { ...this.pin, record: next };
  }

  /**
   * The version is published and not activated: the pin becomes a plain record naming the same
   * version, in the hold, so that the next publish finds a lasting record rather than a pin to
   * pin over (each inactive publish used to nest the one before it in `pinned_over`, h267), and
   * no cleanup finishes an activation this call reports not made (the pin's intent goes with
   * it). Best effort: a pin left names the version served all the same, and is logged.
   */
  private async settlePin(held: HeldActiveRecord, version: number): Promise<void> {
    if (this.pin === undefined) return;
    const written = this.pin;
    this.pin = undefined;
    try {
      // The record lock's fence only: this replaces this call's own write, whatever the
      // caller's lock says.
      const settled = await held.settlePin(
        written,
        `recorded as active when version ${version} was published without being activated`,
      );
      if (settled.dropped.length > 0) this.warnPinsDropped(this.name, settled.dropped);
      // Not this call's pin any more: changed by hand, or a rewrite of it (its intent) that
      // landed though it reported a failure (a network file system's retried rename): left as
      // it is, and said (h295 2).
      if (!settled.written)
        this.log.warn(
          { model: this.name, version },
          `the pin in ${ACTIVE_FILE} was not made a lasting record: the record is no longer exactly the one this publish wrote, and is left as it is; if it still names version ${version} as being activated (pinned_publishing), a cleanup will activate it once this process is gone, unless a version is activated first`,
        );
    } catch (e) {
      const intent = written.record.pinned_publishing;
      this.log.warn(
        { model: this.name, version: written.record.version, err: e },
        intent === undefined
          ? `the pin in ${ACTIVE_FILE} stays (it names version ${written.record.version}, the version served): the next publish replaces it`
          : `the pin in ${ACTIVE_FILE} keeps naming version ${intent.version} as being activated: a cleanup will activate it once this process is gone (or, while it lives, once the record is an hour old to a replica on another host, a day old on this one), unless a version is activated first`,
      );
    }
  }

  /**
   * Undoes the pin, in the hold (the publish published nothing, or what it published is gone
   * again). One that cannot be undone is logged as an error saying what to do, and keeps its
   * staged directory (pinLeft) for the cleanup after this process to remove with the pin
   * (settleAbandonedPin), instead of a pin naming nothing, left for good.
   */
  private async unpin(held: HeldActiveRecord, failure: unknown): Promise<void> {
    if (this.pin === undefined) return;
    const written = this.pin;
    this.pin = undefined;
    const what =
      this.renamed === undefined
        ? 'nothing was published'
        : `version ${this.renamed} was published, did not load and was deleted again`;
    try {
      const undone = await held.unpin(written);
      this.log.info(
        { model: this.name, version: written.record.version, undone },
        undone
          ? `pin of the active version undone: ${what}`
          : `pin of the active version left: the record was changed by hand (${what})`,
      );
    } catch (e) {
      // Before the rename its staged directory is kept, and the cleanup after this process
      // removes both; after it (the version deleted again) there is no directory to judge by,
      // and the pin, which names the version served, stays until a version is activated.
      if (this.renamed === undefined) this.pinLeft = true;
      this.log.error(
        {
          model: this.name,
          version: written.record.version,
          err: e,
          cause: failure instanceof Error ? failure.message : String(failure),
        },
        written.intentOnly
          ? `the pin of version ${written.record.version} written over its own record before a publish that failed (${what}) could not be undone: ${ACTIVE_FILE} keeps naming version ${written.record.version}, which changes nothing served; the cleanup after this process puts the record under it back${this.renamed === undefined ? ' (the staged directory kept for that)' : ''}`
          : `the pin of version ${written.record.version} written before a publish that failed (${what}) could not be undone: ${ACTIVE_FILE} keeps naming it, so versions published later are not served ${this.renamed === undefined ? 'until the cleanup after this process undoes it (its staged directory kept for that) or a version is activated' : 'as the highest until a version is activated'} (POST /v1/models/${this.name}/versions/<v>:activate)`,
      );
    }
  }

  /**
   * Says which pins still to be settled a pin made lasting dropped, more than MAX_PINS_SETTLED
   * (active-record.ts) down its chain: nothing settles them now (h282 R5).
   */
  private warnPinsDropped(name: string, dropped: DroppedPin[]): void {
    this.log.warn({ model: name, dropped }, droppedPinsWords(name, dropped));
  }
}
