import { errnoOf, NormserveError } from '../errors/index.js';

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
