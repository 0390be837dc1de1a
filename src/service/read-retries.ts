import type { LoadedCheckpoint } from '../checkpoint/index.js';
import type { FailedVersion, ModelSnapshot, ServedVersion } from './served-version.js';
import { closeCompiled } from './served-version.js';

/**
 * The most versions of a model loaded again at once, the highest first: those above the one
 * served that a publish's pin loads again (version-publish.ts, servedEverywhere), which bounds the
 * loads made holding the record's lock, and the failed reads SIGHUP's scan retries
 * (`retryReads` with 'all').
 */
export const MAX_FRESH_LOADS = 4;

/**
 * The most scans between two retries of a read that fails every time (FailedVersion.retryScan):
 * 2^10 scans, 34 min at the default MODEL_POLL_INTERVAL_MS of 2 s.
 */
const MAX_READ_RETRY_EXPONENT = 10;

/**
 * The scan from which a version whose read failed (after `retries` scans loaded it again, each
 * failing too) is loaded again: the next scan, then 2, 4, 8… scans later — a transient EMFILE is
 * over at the next poll, and a failing disk is not read at every one.
 */
export const readRetryScan = (failedInScan: number, retries: number): number =>
  failedInScan + 2 ** Math.min(retries, MAX_READ_RETRY_EXPONENT);

/**
 * Which versions a scan loads again whose read failed here (FailedVersion.readFailed): those
 * whose retry is due (the periodic scan), or every one (`all`: SIGHUP, an operator's "reload"
 * after fixing the storage). Either way the highest first and at most `due`: one a scan, `all`:
 * MAX_FRESH_LOADS, per model (retryReads).
 */
export type ReadRetries = 'due' | 'all';

/**
 * What the loads of failed reads ask of the registry they load for (ModelRegistry answers, each
 * call made through it).
 */
export interface ReadRetryRegistry {
  /** The model's snapshot now, if it has one. */
  served(name: string): ModelSnapshot | undefined;
  /** Opened with `openVersion`: its refreshes read the versions they need only. */
  openedAlone(name: string): boolean;
  /** Repository scans started so far (FailedVersion.retryScan counts in them). */
  scansStarted(): number;
  fingerprint(name: string, version: number): Promise<string>;
  loadVersion(
    name: string,
    version: number,
    preread?: LoadedCheckpoint,
    retry?: number,
  ): Promise<ServedVersion>;
  refreshModel(
    name: string,
    preloaded?: ServedVersion,
    replacing?: ServedVersion,
  ): Promise<ModelSnapshot>;
}

/**
 * The loads again of versions this process failed to read (FailedVersion.readFailed): a scan's
 * retries (retryReads) and a cluster worker's readAgain, one load of a failure at a time.
 */
export class ReadsAgain {
  private readonly registry: ReadRetryRegistry;
  /** The loads of failed reads running (loadAgain), by model and version. */
  private readonly loads = new Map<
    string,
    { failed: FailedVersion; done: Promise<ModelSnapshot> }
  >();

  constructor(registry: ReadRetryRegistry) {
    this.registry = registry;
  }

  /**
   * A scan's retries of `name`'s reads that failed here (ReadRetries: the due ones, or `all`),
   * each loaded outside the model's refresh queue and then handed to a refresh (loadAgain), so
   * that a publish, whose refreshes run holding the record's lock, never waits for them there.
   */
  async retryReads(name: string, retries: ReadRetries): Promise<void> {
    const snapshot = this.registry.served(name);
    if (snapshot === undefined || this.registry.openedAlone(name)) return;
    const due = [...snapshot.versions.values()]
      .filter(
        (v): v is FailedVersion =>
          v.state === 'FAILED' &&
          v.readFailed === true &&
          (retries === 'all' || this.registry.scansStarted() >= (v.retryScan ?? 0)),
      )
      .sort((a, b) => b.version - a.version)
      .slice(0, retries === 'all' ? MAX_FRESH_LOADS : 1);
    for (const failed of due) await this.loadAgain(name, failed);
  }

  /** ModelRegistry.readAgain: `version` of `name` loaded again if its read failed here. */
  async readAgain(name: string, version: number): Promise<ModelSnapshot | undefined> {
    const had = this.registry.served(name)?.versions.get(version);
    if (had?.state !== 'FAILED' || had.readFailed !== true || this.registry.openedAlone(name))
      return undefined;
    return this.loadAgain(name, had);
  }

  /**
   * Loads `failed` again, outside the refresh queue, and refreshes its model with what loaded: a
   * retry (readRetries counted on, the next one twice as far) while its files are unchanged, a
   * fresh load when they changed. Released when the refreshed snapshot does not hold it.
   */
  private loadAgain(name: string, failed: FailedVersion): Promise<ModelSnapshot> {
    // One load of a failure at a time: a scan's retry and a worker's readAgain of the same
    // version join (h294 1: both loaded it, and the second copy replaced and closed the first).
    const key = `${name}\0${failed.version}`;
    const running = this.loads.get(key);
    if (running?.failed === failed) return running.done;
    const done = this.loadAgainNow(name, failed).finally(() => {
      if (this.loads.get(key)?.done === done) this.loads.delete(key);
    });
    this.loads.set(key, { failed, done });
    return done;
  }

  private async loadAgainNow(name: string, failed: FailedVersion): Promise<ModelSnapshot> {
    const { version } = failed;
    // Replaced since it was chosen (a SIGHUP's list is made once, then loaded one at a time):
    // nothing to read again.
    const snapshot = this.registry.served(name);
    if (snapshot !== undefined && snapshot.versions.get(version) !== failed) return snapshot;
    const unchanged = (await this.registry.fingerprint(name, version)) === failed.fingerprint;
    const retry = unchanged ? (failed.readRetries ?? 0) + 1 : undefined;
    const loaded = await this.registry.loadVersion(name, version, undefined, retry);
    const held = () => this.registry.served(name)?.versions.get(version) === loaded;
    try {
      // In place of that failure only: a version another path loaded meanwhile (a publish's
      // pin, a refresh after its files changed) stays as it is.
      return await this.registry.refreshModel(name, loaded, failed);
    } finally {
      if (!held()) closeCompiled(loaded);
    }
  }
}
