import { z } from 'zod';
import {
  DEFAULT_PRIOR_STRENGTH,
  DEFAULT_RECALIBRATION_BATCH_SIZE,
  jobRecordSchema,
  NOT_ACTIVATED_CODES,
  numericText,
  PRIOR_STRENGTH_RANGE,
  RECALIBRATION_BATCH_SIZE_RANGE,
  RECALIBRATION_MODES,
  ROW_ARRAY_MESSAGE,
  storageErrnos,
} from '../../service/index.js';
import { integerText, ROWS_ARRAY_MESSAGE } from './common.js';
import { LIMITS } from './limits.js';

const modeField = z.enum(RECALIBRATION_MODES).meta({
  description:
    'exact: AdaBN statistics over all rows (default); prior: blended with the source statistics; running: update_bn-style batches',
});
/**
 * The numeric options, for a JSON body or the query string, whose text is read as the server
 * configuration's is (numericText: text that is no number, or none — `?batch_size=`, which
 * Number() reads as 0 — stays text, so the message quotes what was sent).
 */
const priorStrengthOf = (n: z.ZodNumber) =>
  n
    .min(PRIOR_STRENGTH_RANGE.min!)
    .max(PRIOR_STRENGTH_RANGE.max!)
    .meta({
      description: `prior mode: the weight N of the source statistics, in rows (default ${DEFAULT_PRIOR_STRENGTH})`,
    });
const batchSizeOf = (n: z.ZodNumber) =>
  n
    .int()
    .min(RECALIBRATION_BATCH_SIZE_RANGE.min!)
    .max(RECALIBRATION_BATCH_SIZE_RANGE.max!)
    .meta({
      description: `running mode: rows per batch (default ${DEFAULT_RECALIBRATION_BATCH_SIZE}); 1 only where one row gives every BatchNorm more than one value per channel (a BatchNorm2d on maps larger than 1×1, not a BatchNorm1d)`,
    });
const note = z
  .string()
  .max(LIMITS.noteChars)
  .meta({ description: 'Free text recorded in the new version’s provenance' });

/** JSON body of :recalibrate. */
export const recalibrateBodySchema = z
  .strictObject({
    instances: z
      .array(z.array(z.unknown(), { error: ROW_ARRAY_MESSAGE }), {
        error: ROWS_ARRAY_MESSAGE,
      })
      .meta({
        description:
          'Unlabeled samples of the new domain (raw features, flat or nested by the input shape, as for predict)',
      }),
    mode: modeField
      .optional()
      .meta({ description: `${modeField.description} Default: the query's mode, else exact.` }),
    prior_strength: priorStrengthOf(z.number()).optional(),
    batch_size: batchSizeOf(z.number()).optional(),
    activate: z.boolean().optional().meta({
      description: 'Serve the new version at once (default: the query’s activate, else true)',
    }),
    note: note.optional(),
  })
  .meta({
    examples: [
      {
        instances: [
          [0, 1.6, 6.15, 6.15],
          [0, 2.1, 5.8, 6.3],
        ],
        mode: 'exact',
        activate: true,
        note: 'night camera',
      },
    ],
  });

const booleanString = z.enum(['true', 'false']).transform((v) => v === 'true');

/** Options in the query string, for the NDJSON, CSV and float32 uploads (JSON bodies may use them too). */
export const recalibrateQuerySchema = z.strictObject({
  label_column: z.string().min(1).max(LIMITS.nameChars).optional().meta({
    description:
      'text/csv uploads: the column left out of the features when the header lacks some of the feature names the model recorded (default: the column the model was trained to predict, else "label")',
  }),
  mode: modeField.optional(),
  prior_strength: z.preprocess(numericText, priorStrengthOf(z.number())).optional(),
  // An integer in a URL: decimal digits only, as a version in the path (integerText).
  batch_size: z.preprocess(integerText, batchSizeOf(z.number())).optional(),
  activate: booleanString.optional().meta({ description: 'false publishes without serving it' }),
  note: note.optional(),
});

const layerShift = z.object({
  index: z.number().int().meta({
    description: 'Network index of the BatchNorm layer (of the residual block holding it)',
  }),
  path: z.string().meta({
    description: 'State-dict prefix of the BatchNorm: "5", or "3.body.1" inside a residual block',
  }),
  features: z.number().int().meta({ description: 'Channels (features) of the BatchNorm' }),
  mean_shift: z.number().meta({ description: 'mean over features of |μ_new − μ_old| / σ_old' }),
  std_ratio: z
    .number()
    .meta({ description: 'mean over features of σ_new / σ_old (σ = √(var + eps))' }),
});

/** A change that took effect but could not be synced to disk after (service/storage-warning.ts). */
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

/** A job as GET /v1/jobs/{id} answers it: the record every process shares, with its result typed. */
export const jobSchema = jobRecordSchema
  .extend({ result: recalibrationOutcomeSchema.optional() })
  .meta({
    description:
      'A recalibration job. owner and heartbeat_at name the process running it and when it last showed it was alive; a running job whose process is gone is reported failed with error.code JOB_ABANDONED. request_id (and trace_id, parent_id from a W3C traceparent) come from the request that started it.',
    examples: [
      {
        id: '0b9c3a1e-6f0e-4d5e-9f54-1c2d3e4f5a6b',
        kind: 'recalibration',
        model: 'digits',
        state: 'running',
        phase: 'statistics (layer 5)',
        progress: { rows: 120000, total_rows: 200000 },
        created_at: '2026-11-25T12:00:00.000Z',
        updated_at: '2026-11-25T12:00:03.000Z',
        owner: { host: 'vm', pid: 4242 },
        heartbeat_at: '2026-11-25T12:00:03.000Z',
        request_id: '7f1c0a52-2b0e-4d35-9d8e-0c6b1f0e9a11',
        trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
        parent_id: '00f067aa0ba902b7',
      },
    ],
  });

export const acceptedSchema = z
  .object({ job_id: z.string(), state: z.string(), location: z.string() })
  .meta({
    examples: [
      {
        job_id: '0b9c3a1e-6f0e-4d5e-9f54-1c2d3e4f5a6b',
        state: 'running',
        location: '/v1/jobs/0b9c3a1e-6f0e-4d5e-9f54-1c2d3e4f5a6b',
      },
    ],
  });

export const activateBodySchema = z
  .strictObject({ note: note.optional() })
  .nullish()
  .meta({ examples: [{ note: 'roll back: night model misbehaves on dawn images' }] });

export const activationSchema = z
  .object({
    model: z.string(),
    active_version: z.number().int(),
    previous_version: z.number().int().nullable(),
    warning: storageWarningSchema,
  })
  .meta({ examples: [{ model: 'digits', active_version: 1, previous_version: 2 }] });
