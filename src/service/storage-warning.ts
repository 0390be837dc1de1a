import type { NormserveError } from '../errors/index.js';

/**
 * A write that took effect but whose directory could not be synced after (a crash of the machine
 * may still undo it), as answers carry it beside what happened: `warning` of an activation, a
 * deletion or a recalibration's outcome. Not a failure: the change is what every reader sees.
 */
export interface StorageWarning {
  /** STORAGE_FULL or STORAGE_UNAVAILABLE, as the catalogue maps the errno. */
  code: 'STORAGE_FULL' | 'STORAGE_UNAVAILABLE';
  /** The errno of the failed fsync: EIO, ENOSPC… */
  errno: string;
  /** What happened, and what did not: `version 2 of "digits" was published and is active, but …` */
  message: string;
}

export const storageWarningOf = (e: NormserveError): StorageWarning => ({
  code: e.code === 'STORAGE_FULL' ? 'STORAGE_FULL' : 'STORAGE_UNAVAILABLE',
  errno: typeof e.extra.errno === 'string' ? e.extra.errno : 'EIO',
  message: e.message,
});
