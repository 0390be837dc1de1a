import { z } from 'zod';
import type { NormserveError } from '../errors/index.js';

/**
 * A write that took effect but whose directory could not be synced after (a crash of the machine
 * may still undo it), as answers carry it beside what happened: `warning` of an activation, a
 * deletion or a recalibration's outcome. Not a failure: the change is what every reader sees.
 */
export const storageWarningSchema = z
  .object({
    code: z.enum(['STORAGE_FULL', 'STORAGE_UNAVAILABLE']),
    errno: z.string().meta({ description: 'The errno of the failed fsync: EIO, ENOSPC…' }),
    message: z.string(),
  })
  .optional()
  .meta({
    description:
      'Present when the change took effect (every reader sees it) but the model directory could not be synced after the rename that made it: a crash of the machine may still undo it. The message says what happened, e.g. `version 2 of "digits" was published and is active, but digits could not be synced after the rename: input/output error (EIO); a crash of the machine may still undo it`',
  });

export type StorageWarning = NonNullable<z.output<typeof storageWarningSchema>>;

export const storageWarningOf = (e: NormserveError): StorageWarning => ({
  code: e.code === 'STORAGE_FULL' ? 'STORAGE_FULL' : 'STORAGE_UNAVAILABLE',
  errno: typeof e.extra.errno === 'string' ? e.extra.errno : 'EIO',
  message: e.message,
});
