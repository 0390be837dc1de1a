import { z } from 'zod';
import { layerShiftSchema } from '../checkpoint/index.js';
import { RECALIBRATION_MODES } from '../recalibration/index.js';
import { storageErrnos } from '../repository/index.js';
import { storageWarningSchema } from './storage-warning.js';

/** Stable codes of NotActivated (clients may switch on them). */
export const NOT_ACTIVATED_CODES = [
  'PARENT_NOT_ACTIVE',
  'PARENT_DELETED',
  'ACTIVE_RECORD_BUSY',
  'STORAGE_FULL',
  'STORAGE_UNAVAILABLE',
] as const;

/** The layer report, as metrics.json has it; a response always names each BatchNorm's path. */
const layerShift = layerShiftSchema.required({ path: true });

/**
 * The response of a recalibration, and a job's result: the one definition the service writes, a
 * reader of another process's job record parses, and the API documents.
 */
export const recalibrationOutcomeSchema = z
  .object({
    model: z.string(),
    version: z.number().int().meta({ description: 'The new version' }),
    parent_version: z.number().int(),
    mode: z.enum(RECALIBRATION_MODES),
    samples: z.number().int(),
    activated: z.boolean().meta({
      description:
        'Whether the new version is the active one. With activate (the default) it is activated only if the version it was recalibrated from is still active when it is published, and the active-version record can be written; otherwise not_activated says why',
    }),
    duration_ms: z.number(),
    data_sha256: z
      .string()
      .meta({ description: 'sha256 of the samples as little-endian float32 rows' }),
    layers: z.array(layerShift),
    batches: z.number().int().optional(),
    skipped: z.number().int().optional().meta({
      description:
        'running mode: rows left out, a final batch of one row where a BatchNorm would get one value per channel (a BatchNorm1d; PyTorch raises on it), else 0',
    }),
    job_id: z.string(),
    not_activated: z
      .object({
        code: z.enum(NOT_ACTIVATED_CODES).meta({
          description: `PARENT_NOT_ACTIVE: another version was activated while the recalibration ran (a rollback); PARENT_DELETED: moreover its parent version was deleted; ACTIVE_RECORD_BUSY: the active-version record’s lock stayed held by another writer, so the activation could not be written; STORAGE_FULL, STORAGE_UNAVAILABLE: the storage failed writing the record (${storageErrnos('STORAGE_FULL').join(', ')}; ${storageErrnos('STORAGE_UNAVAILABLE').join(', ')})`,
        }),
        message: z.string(),
        active_version: z.number().int().nullable().meta({
          description:
            'The active version found when the new one was published (null: no usable active-version record); with ACTIVE_RECORD_BUSY, read once the lock was given up on',
        }),
      })
      .optional()
      .meta({
        description:
          'Present when activation was asked for but not done: the model’s active version was no longer parent_version at publish time, or the active-version record could not be written. The version is published; activate it (POST /v1/models/{name}/versions/{v}:activate) to serve it',
      }),
    warning: storageWarningSchema,
  })
  .meta({
    examples: [
      {
        model: 'digits',
        version: 2,
        parent_version: 1,
        mode: 'exact',
        samples: 360,
        activated: true,
        duration_ms: 41.2,
        data_sha256: '3b7e…',
        layers: [
          { index: 1, path: '1', features: 128, mean_shift: 1.93, std_ratio: 0.41 },
          { index: 5, path: '5', features: 64, mean_shift: 0.88, std_ratio: 0.77 },
        ],
        job_id: '0b9c3a1e-6f0e-4d5e-9f54-1c2d3e4f5a6b',
      },
      {
        model: 'digits',
        version: 3,
        parent_version: 2,
        mode: 'exact',
        samples: 400000,
        activated: false,
        duration_ms: 5821.7,
        data_sha256: '9c1f…',
        layers: [{ index: 1, path: '1', features: 128, mean_shift: 1.87, std_ratio: 0.43 }],
        job_id: '5d0e1f2a-3b4c-4d5e-8f60-718293a4b5c6',
        not_activated: {
          code: 'PARENT_DELETED',
          message:
            'version 3 was published but not activated: it derives from version 2, which was deleted while the recalibration ran, and version 1 is active: a recalibration never overrules an activation made while it ran. Activate version 3 to serve it.',
          active_version: 1,
        },
      },
    ],
  });

export type RecalibrationOutcome = z.output<typeof recalibrationOutcomeSchema>;

/**
 * Why a version published with `activate` is not active: the model's active version was no longer
 * the recalibration's parent when it was published (an operator activated another version
 * meanwhile, and may have deleted the parent), and a job never undoes an operator's activation;
 * or the active-version record's lock stayed held by another writer (ACTIVE_RECORD_BUSY), so the
 * activation could not be written.
 */
export type NotActivated = NonNullable<RecalibrationOutcome['not_activated']>;
