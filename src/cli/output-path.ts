import { access, constants, mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { NormserveError } from '../errors/index.js';

/** Why a file system error stopped a write, in words (the errno names only what is unexpected). */
function why(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOTDIR':
    case 'EEXIST':
      return 'a file is in the way (the path, or a directory on it, is a file)';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    default:
      return (e as Error).message;
  }
}

/** OUTPUT_WRITE_FAILED for `path`, saying why; a NormserveError passes through unchanged. */
export function outputWriteFailed(path: string, e: unknown): NormserveError {
  if (e instanceof NormserveError) return e;
  return new NormserveError('OUTPUT_WRITE_FAILED', `cannot write ${path}: ${why(e)}`, { cause: e });
}

/**
 * Makes sure `dir` is a directory this process can write into, creating it (and its parents) if
 * needed: checked before the work that fills it (a training run of minutes), not after.
 */
export async function prepareOutputDirectory(dir: string, flag: string): Promise<void> {
  try {
    await makeDirectories(dir);
    if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error(), { code: 'ENOTDIR' });
    await access(dir, constants.W_OK);
  } catch (e) {
    throw new NormserveError(
      'OUTPUT_WRITE_FAILED',
      `${flag} ${dir}: cannot write there: ${why(e)}`,
      {
        cause: e,
      },
    );
  }
}

/**
 * `mkdir -p`, one level at a time: Node 20's `mkdir(…, { recursive: true })` never settles where
 * mkdir fails with ENOENT under an existing directory (`--out /proc/x` spun a core forever).
 */
async function makeDirectories(dir: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return; // a directory, or a file the caller's stat reports
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
  }
  await makeDirectories(dirname(dir));
  await mkdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'EEXIST') throw e;
  });
}
