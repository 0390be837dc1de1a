import { relative, sep } from 'node:path';
import { type ErrorCode, errnoOf, errnoWords, NormserveError } from '../errors/index.js';

/**
 * The one mapping from the errno of a failed write of the repository (or of the server's own
 * temporary files: storageErrno) to the catalogue: a full device or quota is STORAGE_FULL (507), a
 * read-only, failing or forbidden one STORAGE_UNAVAILABLE (503), and so is one that cannot be
 * opened now for want of descriptors (EMFILE, ENFILE: idle connections had taken them all, and a
 * recalibration failed INTERNAL where a retry later succeeds; attack review of 2026-12-06); other
 * errors are not the storage's, and stay what they are.
 */
const STORAGE_ERRNOS: Readonly<Record<string, { code: ErrorCode }>> = {
  ENOSPC: { code: 'STORAGE_FULL' },
  EDQUOT: { code: 'STORAGE_FULL' },
  EROFS: { code: 'STORAGE_UNAVAILABLE' },
  EIO: { code: 'STORAGE_UNAVAILABLE' },
  EACCES: { code: 'STORAGE_UNAVAILABLE' },
  EPERM: { code: 'STORAGE_UNAVAILABLE' },
  EMFILE: { code: 'STORAGE_UNAVAILABLE' },
  ENFILE: { code: 'STORAGE_UNAVAILABLE' },
};

/** The errnos STORAGE_ERRNOS maps to `code`, in its order (for the API's documentation). */
export function storageErrnos(code: 'STORAGE_FULL' | 'STORAGE_UNAVAILABLE'): string[] {
  return Object.entries(STORAGE_ERRNOS)
    .filter(([, mapped]) => mapped.code === code)
    .map(([errno]) => errno);
}

/** What the failed system call was doing, in words. */
const SYSCALL_WORDS: Readonly<Record<string, string>> = {
  open: 'creating',
  mkdtemp: 'creating',
  write: 'writing',
  read: 'reading',
  fsync: 'syncing',
  rename: 'renaming',
  rmdir: 'removing',
  rm: 'removing',
  unlink: 'removing',
  mkdir: 'creating',
  link: 'linking',
  utime: 'touching',
};

/**
 * A write that took effect (renamed into place: every reader sees it) whose directory could not
 * be synced after the rename, so a crash of the machine may still undo it: thrown by
 * atomic-write.ts after the point of no return, for the caller to report what happened.
 */
export class UnsyncedWrite extends Error {
  override readonly name = 'UnsyncedWrite';
  /** The path written (the renamed file or directory). */
  readonly written: string;

  constructor(written: string, cause: unknown) {
    super(`${written} was written but could not be synced`, { cause });
    this.written = written;
  }
}

/** The errno and the path of a file system error (its own, else the one the caller knows). */
function errnoFacts(e: unknown): { errno: string; syscall?: string; path?: string } | undefined {
  const error = e instanceof UnsyncedWrite ? e.cause : e;
  const errno = errnoOf(error);
  if (errno === undefined || STORAGE_ERRNOS[errno] === undefined) return undefined;
  const { syscall, path } = error as NodeJS.ErrnoException;
  return {
    errno,
    ...(syscall !== undefined ? { syscall } : {}),
    ...(path !== undefined ? { path } : {}),
  };
}

/** Whether `e` is a failure of the storage (STORAGE_ERRNOS), or already mapped to one. */
export const isStorageFailure = (e: unknown): boolean =>
  (e instanceof NormserveError &&
    (e.code === 'STORAGE_FULL' || e.code === 'STORAGE_UNAVAILABLE')) ||
  errnoFacts(e) !== undefined;

/**
 * Whether a file operation failed for the storage's reasons, whichever errno (EMFILE, ESTALE,
 * ETIMEDOUT on a network mount, beyond STORAGE_ERRNOS) or one already worded as a storage
 * failure — for a write that is best effort (a pin that only carries a conditional publish's
 * intent: WrittenPin.intentOnly). Never another NormserveError (LOCK_LOST: the caller's lock
 * lost, which must end the write's purpose), nor Node's own codes (ERR_…, ABORT_ERR).
 */
export const refusedByStorage = (e: unknown): boolean =>
  e instanceof NormserveError ? isStorageFailure(e) : /^E[A-Z0-9]+$/.test(errnoOf(e) ?? '');

/**
 * What STORAGE_ERRNOS says of `e` when its errno is the storage's: the catalogue code, the errno
 * and its words, what the failed call was doing (`writing`) and the path it names, if any; else
 * undefined. For files outside the repository, which messages name by their absolute path (a
 * recalibration's temporary spill file, SpillingRowStore).
 */
export function storageErrno(
  e: unknown,
): { code: ErrorCode; errno: string; words: string; doing: string; path?: string } | undefined {
  const facts = errnoFacts(e);
  if (!facts) return undefined;
  const { code } = STORAGE_ERRNOS[facts.errno]!;
  const words = errnoWords({ code: facts.errno })!;
  const doing = facts.syscall ? (SYSCALL_WORDS[facts.syscall] ?? facts.syscall) : 'writing';
  return {
    code,
    errno: facts.errno,
    words,
    doing,
    ...(facts.path !== undefined ? { path: facts.path } : {}),
  };
}

/** `path` relative to the repository `root`, as every message names files (never absolute). */
const label = (root: string, path: string): string => relative(root, path).split(sep).join('/');

/**
 * `e` as the catalogue's storage error when its errno is the storage's (STORAGE_ERRNOS), its
 * message naming the operation, the errno and the path relative to the repository:
 * `cannot publish a version of "digits": no space left on the device (ENOSPC) writing
 * digits/.tmp-vm-81_1534870-3f2a/model.safetensors`. Anything else is returned unchanged.
 */
export function storageFailure(
  e: unknown,
  operation: string,
  root: string,
  /** The directory written in, named when the error names no file (a write on a handle). */
  dir?: string,
): unknown {
  if (e instanceof NormserveError) return e;
  const facts = storageErrno(e);
  if (!facts) return e;
  const { code, words, doing } = facts;
  const where =
    facts.path !== undefined
      ? ` ${doing} ${label(root, facts.path)}`
      : dir !== undefined
        ? ` ${doing} in ${label(root, dir)}`
        : '';
  return new NormserveError(code, `${operation}: ${words} (${facts.errno})${where}`, {
    cause: e,
    extra: { errno: facts.errno },
  });
}

/**
 * What an UnsyncedWrite means for the one who asked: `happened` (what every reader now sees:
 * `version 2 of "digits" was published and is active`), and that a crash may undo it, with the
 * errno and the directory: a storage error to report as a warning, not as a failure.
 */
export function unsyncedWarning(e: UnsyncedWrite, happened: string, root: string): NormserveError {
  const facts = errnoFacts(e);
  const errno = facts?.errno ?? errnoOf(e.cause) ?? 'EIO';
  const words =
    STORAGE_ERRNOS[errno] !== undefined
      ? errnoWords({ code: errno })!
      : String((e.cause as Error | undefined)?.message);
  const dir = facts?.path !== undefined ? label(root, facts.path) : label(root, e.written);
  return new NormserveError(
    STORAGE_ERRNOS[errno]?.code ?? 'STORAGE_UNAVAILABLE',
    `${happened}, but ${dir} could not be synced after the rename: ${words} (${errno}); a crash of the machine may still undo it`,
    { cause: e, extra: { errno } },
  );
}
