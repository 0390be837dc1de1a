import { z } from 'zod';
import {
  DEFAULT_PRIOR_STRENGTH,
  DEFAULT_RECALIBRATION_BATCH_SIZE,
  decimalText,
  jobRecordSchema,
  PRIOR_STRENGTH_RANGE,
  RECALIBRATION_BATCH_SIZE_RANGE,
  RECALIBRATION_MODES,
  ROW_ARRAY_MESSAGE,
  recalibrationOutcomeSchema,
  storageWarningSchema,
} from '../../service/index.js';
import { integerText, ROWS_ARRAY_MESSAGE } from './common.js';
import { LIMITS, noteSchema } from './limits.js';
import { modelVersionsSchema } from './tf-serving.js';

// Defined in service/ (a job's result is parsed there when another process wrote it).
export { recalibrationOutcomeSchema, storageWarningSchema };

const modeField = z.enum(RECALIBRATION_MODES).meta({
  description:
    'exact: AdaBN statistics over all rows (default); prior: blended with the source statistics; running: update_bn-style batches',
});
/**
 * The numeric options, for a JSON body or the query string: `prior_strength`'s text is read as a
 * decimal number (decimalText: text that is no decimal number — `0x10`, ` 1`, or none:
 * `?prior_strength=`, which Number() reads as 0 — stays text, so the message quotes what was
 * sent), `batch_size`'s as an integer in decimal digits (integerText).
 */
const priorStrengthOf = (n: z.ZodNumber) =>
  n
    .min(PRIOR_STRENGTH_RANGE.min!)
    .max(PRIOR_STRENGTH_RANGE.max!)
    .meta({
      description: `prior mode: the weight N of the source statistics, in rows (default ${DEFAULT_PRIOR_STRENGTH}); refused (400) with another mode`,
    });
const batchSizeOf = (n: z.ZodNumber) =>
  n
    .int()
    .min(RECALIBRATION_BATCH_SIZE_RANGE.min!)
    .max(RECALIBRATION_BATCH_SIZE_RANGE.max!)
    .meta({
      description: `running mode: rows per batch (default ${DEFAULT_RECALIBRATION_BATCH_SIZE}; refused (400) with another mode); 1 only where one row gives every BatchNorm more than one value per channel (a BatchNorm2d on maps larger than 1×1, not a BatchNorm1d)`,
    });
const note = noteSchema.meta({
  description: 'Free text recorded in the new version’s provenance',
});

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
  prior_strength: z.preprocess(decimalText, priorStrengthOf(z.number())).optional(),
  // An integer in a URL: decimal digits only, as a version in the path (integerText).
  batch_size: z.preprocess(integerText, batchSizeOf(z.number())).optional(),
  activate: booleanString.optional().meta({ description: 'false publishes without serving it' }),
  note: note.optional(),
});

/** A job as GET /v1/jobs/{id} answers it: the record every process shares, its result parsed. */
export const jobSchema = jobRecordSchema.meta({
  description:
    'A recalibration job. owner and heartbeat_at name the process running it and when it last showed it was alive; a running job whose process is gone is reported failed with error.code JOB_ABANDONED, one cut by the shutdown of its server with JOB_INTERRUPTED. request_id (and trace_id, parent_id from a W3C traceparent) come from the request that started it.',
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

/** A deletion's answer: the version deleted, and the model's versions as they are now. */
export const deletionSchema = z
  .object({
    deleted_version: z.number().int(),
    model: modelVersionsSchema,
    warning: storageWarningSchema,
  })
  .meta({
    description: 'Deleted',
    examples: [
      {
        deleted_version: 2,
        model: {
          name: 'digits',
          active_version: 1,
          state: 'AVAILABLE',
          versions: [{ version: 1, state: 'AVAILABLE', active: true }],
        },
      },
    ],
  });

export const activationSchema = z
  .object({
    model: z.string(),
    active_version: z.number().int(),
    previous_version: z.number().int().nullable(),
    warning: storageWarningSchema,
  })
  .meta({ examples: [{ model: 'digits', active_version: 1, previous_version: 2 }] });
