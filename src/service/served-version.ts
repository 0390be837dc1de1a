import type { LoadedCheckpoint } from '../checkpoint/index.js';
import type { ErrorCode } from '../errors/index.js';
import type { CompiledModel } from '../inference/index.js';
import type { ActiveRecord } from '../repository/index.js';

/** What every version loaded in this process has, whatever its state. Immutable once created. */
interface VersionBase {
  readonly name: string;
  readonly version: number;
  readonly loadedAt: string;
  /**
   * Sizes and mtimes of the version's files: a FAILED version is loaded again when they change
   * (and a read that failed, when a scan's retry is due: FailedVersion.retryScan).
   */
  readonly fingerprint: string;
}

/** A version that loaded and compiled: it can serve. */
export interface AvailableVersion extends VersionBase {
  readonly state: 'AVAILABLE';
  readonly checkpoint: LoadedCheckpoint;
  readonly compiled: CompiledModel;
}

/** A version that did not load: it is listed with why, never served. */
export interface FailedVersion extends VersionBase {
  readonly state: 'FAILED';
  /** Why loading failed. */
  readonly reason: string;
  /** The catalogue code of that failure, when it has one. */
  readonly reasonCode?: ErrorCode;
  /**
   * The failure came while reading its files and is not the files' own (isBrokenCheckpoint): an
   * errno — EMFILE, ESTALE, EIO, and EACCES too, which a root-squashed NFS mount or a replica of
   * another uid gives one process alone — or an error building the network from them, or a
   * RangeError sizing the engine's buffers after (this process's memory). Another process may load the version, and serve it. A
   * refresh keeps the failure while the files' fingerprint is unchanged; a publish's pin loads it
   * again, and refuses while it still fails (servedEverywhere) rather than guess: h282 classed
   * EACCES and errors without an errno as every process's, and a replica then pinned an older
   * version than the others served (h283 F3). A repository scan loads it again once its retry is
   * due (`retryScan`), so an EMFILE once does not keep this process serving an older version than
   * every other process until its files change or it restarts.
   */
  readonly readFailed?: true;
  /**
   * With `readFailed`: the repository scan from which it is loaded again (ModelRegistry.scan
   * counts them: MODEL_POLL_INTERVAL_MS apart) — the next scan after the failure, then twice as
   * many scans after each retry that failed too (readRetryScan).
   */
  readonly retryScan?: number;
  /** With `readFailed`: how many scans loaded it again, each failing to read it again. */
  readonly readRetries?: number;
}

/** One version as loaded in this process, told apart by `state`. */
export type ServedVersion = AvailableVersion | FailedVersion;

/** A model's versions and its active version; replaced as a whole, never mutated. */
export interface ModelSnapshot {
  readonly name: string;
  readonly versions: ReadonlyMap<number, ServedVersion>;
  /**
   * The served version: the recorded one (active-version.json); without a record, the highest
   * available one. While the record is unusable (activeProblem), the version served before it
   * became so; none if there was none (a start-up never guesses), except for a record naming a
   * version whose directory is gone: once the version served before is gone too (or at start-up),
   * the highest available one, as without a record.
   */
  readonly active: number | undefined;
  readonly activeRecord: ActiveRecord | undefined;
  /** Why the active-version record cannot be followed (unreadable, or naming no available version). */
  readonly activeProblem?: string;
  /**
   * The record names a deleted version: `active` is the highest available one (see
   * ModelRegistry.swap).
   */
  readonly activeFallback?: true;
}

export const isAvailable = (v: ServedVersion | undefined): v is AvailableVersion =>
  v?.state === 'AVAILABLE';

/** Releases a version's engine threads; a FAILED version holds none. */
export const closeCompiled = (v: ServedVersion): void => {
  if (v.state === 'AVAILABLE') v.compiled.close();
};
