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
import { errnoOf } from '../errors/index.js';
import { METRICS_FILE, VERSION_NAME_PATTERN } from '../service/index.js';

/** A staged version directory, and what tells it apart once renamed. */
export interface StagedVersion {
  readonly path: string;
  /** Its metrics.json's size and SHA-256; undefined when it holds none, or it cannot be read. */
  readonly metrics: Digest | undefined;
}

/** A file's size and SHA-256. */
interface Digest {
  readonly size: number;
  readonly sha256: string;
}

/**
 * The size and SHA-256 of `file` when it is a regular file (of exactly `size` bytes, when given:
 * the staged one's, which this run wrote); `absent` when it is not there, is no regular file or
 * is of another size (so not the staged one's), `unreadable` when it might be but cannot be read.
 * Opened without blocking and checked by fstat, so a FIFO or a device in a version directory
 * (hostile, or a mistake) cannot hold the signal handler that calls this (h290 4).
 */
function fileDigest(file: string, size?: number): Digest | 'absent' | 'unreadable' {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    return errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR' ? 'absent' : 'unreadable';
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return 'absent';
    if (size !== undefined && info.size !== size) return 'absent';
    const bytes = Buffer.alloc(info.size);
    let read = 0;
    while (read < bytes.length) {
      const n = readSync(fd, bytes, read, bytes.length - read, read);
      if (n === 0) return 'unreadable'; // shorter than fstat said: changing under us
      read += n;
    }
    return { size: info.size, sha256: createHash('sha256').update(bytes).digest('hex') };
  } catch {
    return 'unreadable';
  } finally {
    closeSync(fd);
  }
}

/** Records the staged directory at `path` (its files written, not yet renamed into place). */
export function stagedVersion(path: string): StagedVersion {
  const metrics = fileDigest(join(path, METRICS_FILE));
  return { path, metrics: typeof metrics === 'object' ? metrics : undefined };
}

/**
 * What became of the staged directory: renamed into place as `version`; not published (still
 * staged, or gone without a rename); or `unknown`, with why — its metrics.json could not be read
 * when it was staged, or a version that may be it cannot be read now — for the message to say so
 * rather than claim either.
 */
export type StagedOutcome =
  | { readonly published: string }
  | { readonly published: false }
  | { readonly unknown: string };

/**
 * What became of the staged directory in `modelDir` (StagedOutcome). Synchronous: called from a
 * signal's handler, which ends the process; only metrics.json files of the staged one's size are
 * read, each at most once.
 */
export function publishedAs(modelDir: string, staged: StagedVersion): StagedOutcome {
  const { metrics } = staged;
  if (existsSync(staged.path)) return { published: false };
  if (metrics === undefined)
    return { unknown: `its ${METRICS_FILE} could not be read when it was staged` };
  let names: string[];
  try {
    names = readdirSync(modelDir).filter((name) => VERSION_NAME_PATTERN.test(name));
  } catch (e) {
    return { unknown: `${modelDir} cannot be listed (${errnoOf(e) ?? String(e)})` };
  }
  let unreadable: string | undefined;
  for (const name of names.sort((a, b) => Number(b) - Number(a))) {
    const digest = fileDigest(join(modelDir, name, METRICS_FILE), metrics.size);
    if (digest === 'unreadable') unreadable ??= name;
    else if (digest !== 'absent' && digest.sha256 === metrics.sha256) return { published: name };
  }
  return unreadable === undefined
    ? { published: false }
    : { unknown: `${join(modelDir, unreadable, METRICS_FILE)} cannot be read` };
}
