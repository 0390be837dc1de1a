import { z } from 'zod';
import { DEFAULT_MAX_BATCH_SIZE, InputShape, taskSchema } from '../../service/index.js';
import { queryFlag, rowsSchema } from './common.js';
import { autoRecalibrationSchema } from './drift.js';

/** A digits row (the README's), the example of every predict body. */
export const digitsExampleRow = [
  0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8,
  8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13,
  10, 0, 0, 0,
];

/** The one signature every model has, under TF Serving's default key. */
export const SERVING_SIGNATURE = 'serving_default';

const rowLimit = `at most MAX_BATCH_SIZE rows (${DEFAULT_MAX_BATCH_SIZE} by default; more is a 413 BATCH_TOO_LARGE)`;

/** TF Serving's REST predict request: row format (`instances`) or columnar (`inputs`). */
function predictRequest(rows: ReturnType<typeof rowsSchema>) {
  return z
    .strictObject({
      signature_name: z
        .enum([SERVING_SIGNATURE])
        .optional()
        .meta({
          description: `TF Serving's signature key: every model has one signature, "${SERVING_SIGNATURE}" (TF Serving's default key); another name is a 400, as TF Serving answers for a signature the model does not have`,
        }),
      instances: rows
        .optional()
        .meta({ description: `Row format: one array of features per instance, ${rowLimit}` }),
      inputs: rows.optional().meta({
        description: `Columnar format: the batched input tensor [N, features], ${rowLimit}`,
      }),
    })
    .refine((b) => (b.instances === undefined) !== (b.inputs === undefined), {
      message: 'exactly one of "instances" (row format) or "inputs" (columnar format) is required',
    });
}

/**
 * The request of the OpenAPI document and of error reports. The row limit and the samples' shape
 * are checked by the handler (predict-request.ts), so this one schema (a named OpenAPI component)
 * fits every app.
 */
export const predictRequestSchema = predictRequest(rowsSchema()).meta({
  id: 'PredictRequest',
  examples: [
    { instances: [digitsExampleRow] },
    { signature_name: 'serving_default', inputs: [digitsExampleRow] },
  ],
});

/**
 * The same request for one model: samples of its input shape (`[64]`: rows of exactly 64 values;
 * `[1, 8, 8]`: 64 values flat or nested [1][8][8]), at most `maxRows` of them.
 */
export const predictRequestSchemaFor = (inputShape: readonly number[], maxRows: number) =>
  predictRequest(rowsSchema(maxRows, new InputShape(inputShape).sampleSchema()));

export const predictQuerySchema = z.strictObject({
  fused: queryFlag('true').meta({
    description: 'false runs the unfused reference path (every layer in eval mode), for debugging',
  }),
});

export const predictResponseSchema = z
  .object({
    model_version: z.number().int().meta({ description: 'The version that computed every row' }),
    predictions: z.array(z.array(z.number())).optional().meta({
      description:
        'Row format: class probabilities (classification) or outputs (regression) per row',
    }),
    outputs: z
      .array(z.array(z.number()))
      .optional()
      .meta({ description: 'Columnar format: the same as a tensor' }),
    labels: z
      .array(z.string())
      .optional()
      .meta({ description: 'Predicted label per row (classification)' }),
  })
  .meta({
    id: 'PredictResponse',
    examples: [
      {
        model_version: 1,
        predictions: [[0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.99]],
        labels: ['9'],
      },
    ],
  });

const versionStatus = z.object({
  version: z.string(),
  state: z.enum(['AVAILABLE', 'FAILED']),
  status: z.object({
    error_code: z.string(),
    error_message: z.string(),
    code: z.string().optional().meta({
      description:
        'normserve extension: the stable code of a load failure (docs/errors.md), e.g. CHECKPOINT_MISMATCH; error_code stays TF Serving’s UNKNOWN',
    }),
  }),
  active: z
    .boolean()
    .meta({ description: 'normserve extension: this version is served by default' }),
});

export const modelStatusSchema = z
  .object({
    model_version_status: z.array(versionStatus),
    active_record_error: z.string().optional().meta({
      description:
        "normserve extension: why the model's active-version.json cannot be followed (the version served before stays served; for a deleted version, the highest available one)",
    }),
    auto_recalibration: autoRecalibrationSchema.optional().meta({
      description:
        'normserve extension (AUTO_RECALIBRATE other than off): the traffic sample, the last automatic action, a candidate version and its shadow evaluation',
    }),
  })
  .meta({
    id: 'ModelStatus',
    description: "TF Serving's GetModelStatus response",
    examples: [
      {
        model_version_status: [
          {
            version: '1',
            state: 'AVAILABLE',
            status: { error_code: 'OK', error_message: '' },
            active: true,
          },
        ],
      },
    ],
  });

/** GET /v1/models/{name}/metadata (and one version's). */
export const versionMetadataSchema = z
  .looseObject({
    name: z.string(),
    version: z.number().int(),
    task: taskSchema,
    input_shape: z.array(z.number().int()),
    output_shape: z.array(z.number().int()),
    labels: z.array(z.string()).nullable(),
    layers: z.array(
      z
        .looseObject({
          index: z.number().int(),
          type: z.string(),
          compiled: z.string().nullable(),
        })
        .meta({
          description:
            'A config.json layer entry and its fate in the compiled plan; a residual block lists its nested layers (each with its `path`) under `layers`',
        }),
    ),
    folded_batchnorms: z.array(z.union([z.number().int(), z.string()])).meta({
      description:
        'The BatchNorm layers folded into Linear or Conv2d weights: the index of a top-level one, the path ("3.body.1") of one inside a residual block',
    }),
    input_transform_folded: z.boolean(),
    kernels: z.array(z.string()),
    training: z.unknown().meta({
      description:
        "config.json's training record; for a recalibrated version (which keeps its parent's) without test_accuracy, which was measured with trained_version's statistics",
    }),
    trained_version: z.number().int().meta({
      description:
        'The version that training produced: this one, or for a recalibrated version the first of its recalibration chain (its metadata has the test metrics of the training)',
    }),
    metrics: z.unknown().meta({
      description:
        "From metrics.json: a training's test, best_epoch, seed, data_sha256 and wall_time_ms; a recalibration's report (format normserve.recalibration/v1: mode, samples, data_sha256, layers, and batch_size, batches, skipped or prior_strength); null when absent or unreadable",
    }),
    provenance: z.unknown(),
  })
  .meta({
    description: 'What a client needs to call the version, and what compilation did to it',
    examples: [
      {
        name: 'digits',
        version: 1,
        task: 'classification',
        input_shape: [64],
        output_shape: [10],
        labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
        description: '8x8 handwritten digits',
        layers: [
          {
            index: 0,
            type: 'linear',
            in_features: 64,
            out_features: 128,
            bias: true,
            compiled: 'kernel',
          },
          {
            index: 1,
            type: 'batchnorm1d',
            num_features: 128,
            compiled: 'folded_into_previous_linear',
          },
          { index: 2, type: 'relu', compiled: 'fused_activation' },
          { index: 3, type: 'dropout', p: 0.2, compiled: 'removed_in_eval' },
          {
            index: 4,
            type: 'linear',
            in_features: 128,
            out_features: 10,
            bias: true,
            compiled: 'kernel',
          },
        ],
        folded_batchnorms: [1],
        input_transform_folded: true,
        kernels: ['dense+relu', 'dense'],
        training: null,
        trained_version: 1,
        metrics: {
          test: { loss: 0.245, accuracy: 0.95, rows: 360 },
          best_epoch: 39,
          seed: 42,
          data_sha256: 'd7ff1341011182b7af3733b201a919cea2ffe00f25ff23ba48c5e791daffb498',
          wall_time_ms: 6551,
        },
        provenance: null,
        loaded_at: '2026-01-01T00:00:00.000Z',
      },
    ],
  });

/** normserve extension of model status: why active-version.json cannot be followed. */
const activeRecordError = z.string().optional().meta({
  description:
    "Why the model's active-version.json cannot be followed (unreadable, or naming a version that is not available); the version served before stays served, or none at start-up; a record naming a deleted version serves the highest available one",
});

const modelListing = z.object({
  name: z.string(),
  active_version: z.number().int().nullable(),
  state: z.enum(['AVAILABLE', 'UNAVAILABLE']),
  active_record_error: activeRecordError,
  versions: z.array(
    z.object({
      version: z.number().int(),
      state: z.enum(['AVAILABLE', 'FAILED']),
      active: z.boolean(),
      reason: z
        .string()
        .optional()
        .meta({ description: 'Why the version failed to load (FAILED only)' }),
    }),
  ),
});

const modelListingExample = {
  name: 'digits',
  active_version: 1,
  state: 'AVAILABLE',
  versions: [
    { version: 1, state: 'AVAILABLE', active: true },
    {
      version: 2,
      state: 'FAILED',
      active: false,
      reason: 'model.safetensors: the file is shorter than its header says',
    },
  ],
};

/** GET /v1/models. */
export const modelsListSchema = z
  .object({ models: z.array(modelListing) })
  .meta({ examples: [{ models: [modelListingExample] }] });

/** GET /v1/models/{name}/versions. */
export const modelVersionsSchema = modelListing.meta({ examples: [modelListingExample] });
