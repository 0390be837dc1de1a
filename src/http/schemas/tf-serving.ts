import { z } from 'zod';
import { InputShape } from '../../service/index.js';
import { queryFlag, rowsSchema } from './common.js';
import { autoRecalibrationSchema } from './drift.js';
import { LIMITS } from './limits.js';

/** A digits row (the README's), the example of every predict body. */
export const digitsExampleRow = [
  0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8,
  8, 0, 0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13,
  10, 0, 0, 0,
];

const rowLimit = 'at most MAX_BATCH_SIZE rows (4096 by default; more is a 413 BATCH_TOO_LARGE)';

/** TF Serving's REST predict request: row format (`instances`) or columnar (`inputs`). */
function predictRequest(rows: ReturnType<typeof rowsSchema>) {
  return z
    .strictObject({
      signature_name: z
        .string()
        .max(LIMITS.nameChars)
        .optional()
        .meta({ description: 'Accepted for compatibility; models have one signature' }),
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
 * are checked by the route, so this one schema (a named OpenAPI component) fits every app.
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
  status: z.object({ error_code: z.string(), error_message: z.string() }),
  active: z
    .boolean()
    .meta({ description: 'normserve extension: this version is served by default' }),
});

export const modelStatusSchema = z
  .object({
    model_version_status: z.array(versionStatus),
    active_record_error: z.string().optional().meta({
      description:
        "normserve extension: why the model's active-version.json cannot be followed (the version served before stays served)",
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
