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
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readSync,
} from 'node:fs';
import { join } from 'node:path';
import { METRICS_FILE, VERSION_NAME_PATTERN } from '../service/index.js';

/** A staged version directory, and what tells it apart once renamed. */
export interface StagedVersion {
  readonly path: string;
  /** Its metrics.json's size and SHA-256; undefined when it holds none. */
  readonly metrics: { readonly size: number; readonly sha256: string } | undefined;
}

/**
 * The size and SHA-256 of `file` when it is a regular file (of exactly `size` bytes, when given:
 * the staged one's, which this run wrote); undefined otherwise, or when it cannot be read. Opened without blocking and
 * checked by fstat, so a FIFO or a device in a version directory (hostile, or a mistake) cannot
 * hold the signal handler that calls this (h290 4).
 */
function fileDigest(file: string, size?: number): { size: number; sha256: string } | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return undefined;
    if (size !== undefined && info.size !== size) return undefined;
    const bytes = Buffer.alloc(info.size);
    let read = 0;
    while (read < bytes.length) {
      const n = readSync(fd, bytes, read, bytes.length - read, read);
      if (n === 0) return undefined; // shorter than fstat said: changing under us
      read += n;
    }
    return { size: info.size, sha256: createHash('sha256').update(bytes).digest('hex') };
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Records the staged directory at `path` (its files written, not yet renamed into place). */
export function stagedVersion(path: string): StagedVersion {
  return { path, metrics: fileDigest(join(path, METRICS_FILE)) };
}

/**
 * The version of `modelDir` the staged directory was renamed into, or undefined while it is still
 * staged, was never renamed, or holds no metrics.json to tell it by. Synchronous: called from a
 * signal's handler, which ends the process; only metrics.json files of the staged one's size are
 * read, each at most once.
 */
export function publishedAs(modelDir: string, staged: StagedVersion): string | undefined {
  const { metrics } = staged;
  if (existsSync(staged.path) || metrics === undefined) return undefined;
  try {
    return readdirSync(modelDir)
      .filter((name) => VERSION_NAME_PATTERN.test(name))
      .sort((a, b) => Number(b) - Number(a))
      .find(
        (name) =>
          fileDigest(join(modelDir, name, METRICS_FILE), metrics.size)?.sha256 === metrics.sha256,
      );
  } catch {
    return undefined;
  }
}
