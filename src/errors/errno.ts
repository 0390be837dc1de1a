/**
 * The errno code of a failed system call (ENOENT, EEXIST…), if what was thrown has one. Anything
 * may be thrown, `null` and strings included: only an object's string `code` counts.
 */
export function errnoOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  return typeof e.code === 'string' ? e.code : undefined;
}

/**
 * What an errno means, in the words of strerror(3) (glibc's, lower-cased), for the errnos
 * normserve's messages name: one table, so `EPERM` reads the same in every message (it had been
 * "permission denied" in some and "operation not permitted" in others). Callers that know more
 * say more around it (`the repository … cannot be read by this process (permission denied)`).
 */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  ENOTDIR: 'not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'file exists',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in system',
};

/** ERRNO_WORDS of what `e` names (errnoOf); undefined for another errno, or none. */
export function errnoWords(e: unknown): string | undefined {
  const errno = errnoOf(e);
  return errno === undefined ? undefined : ERRNO_WORDS[errno];
}
