/**
 * Which version a staged version directory became, for a CLI ending on a signal while it publishes
 * (train): told by what the directory holds, not by its inode. A rename keeps a directory's inode
 * on a local file system, not always on overlayfs without xino, a CIFS mount with noserverino or a
 * FUSE store, where an inode-based check said "nothing was written" for a version that was
 * published (the seventeenth session's Left). Its metrics.json names the run (every epoch's
 * duration), so two runs' directories do not hold the same one; its SHA-256 is taken once its
 * files are written, before the rename.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { METRICS_FILE, VERSION_NAME_PATTERN } from '../service/index.js';

/** A staged version directory, and what tells it apart once renamed. */
export interface StagedVersion {
  readonly path: string;
  /** The SHA-256 of its metrics.json, undefined when it holds none. */
  readonly metricsSha256: string | undefined;
}

const sha256Of = (file: string): string | undefined => {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return undefined;
  }
};

/** Records the staged directory at `path` (its files written, not yet renamed into place). */
export function stagedVersion(path: string): StagedVersion {
  return { path, metricsSha256: sha256Of(join(path, METRICS_FILE)) };
}

/**
 * The version of `modelDir` the staged directory was renamed into, or undefined while it is still
 * staged, was never renamed, or holds no metrics.json to tell it by. Synchronous: called from a
 * signal's handler, which ends the process.
 */
export function publishedAs(modelDir: string, staged: StagedVersion): string | undefined {
  if (existsSync(staged.path) || staged.metricsSha256 === undefined) return undefined;
  try {
    return readdirSync(modelDir)
      .filter((name) => VERSION_NAME_PATTERN.test(name))
      .sort((a, b) => Number(b) - Number(a))
      .find((name) => sha256Of(join(modelDir, name, METRICS_FILE)) === staged.metricsSha256);
  } catch {
    return undefined;
  }
}
