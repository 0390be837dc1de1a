import { z } from 'zod';
import {
  DEFAULT_MAX_BATCH_SIZE,
  INPUT_TENSOR,
  InputShape,
  recalibrationMetricsSchema,
  taskSchema,
  trainingMetricsSchema,
} from '../../service/index.js';
import { anySampleSchema, queryFlag, rowListSchema } from './common.js';
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

/**
 * TF Serving's named form of a value: an object keyed by input name (api_rest.md: the value of
 * "inputs" is "a single input tensor or a map of input name to tensors"; the items of
 * "instances" are lists, or objects "containing input name/tensor value pair, one for each named
 * input"). Every model here has one input, INPUT_TENSOR, the name the metadata's signature_def
 * and the Open Inference Protocol routes give it.
 */
export const namedInput = <T extends z.ZodType>(value: T) =>
  z.strictObject({ [INPUT_TENSOR]: value } as Record<typeof INPUT_TENSOR, T>);

/**
 * A value in its plain form or TF Serving's named one. Where both refuse it for the same reason
 * at the top (not a list, no rows) that reason is the message, not zod's "Invalid input" for a
 * union; other failures of the named form are named by the row screen first (validation.ts), so
 * `expected` is what is left.
 */
function plainOrNamed<A extends z.ZodType, B extends z.ZodType>(
  plain: A,
  named: B,
  expected: string,
) {
  return z.union([plain, named], {
    error: (issue) => {
      const options = (issue as { errors?: { path: PropertyKey[]; message: string }[][] }).errors;
      const first = options?.[0]?.[0];
      const same =
        first !== undefined &&
        first.path.length === 0 &&
        options!.every(
          (o) => o.length === 1 && o[0]!.path.length === 0 && o[0]!.message === first.message,
        );
      return same ? first.message : expected;
    },
  });
}

/**
 * TF Serving's REST predict request: row format (`instances`: a list of samples, or of objects
 * naming the input) or columnar (`inputs`: the batched tensor, or an object naming it). The
 * plain forms are the first option of each union, so that a check compiled from the schema
 * (compiled-schema.ts tries a union's options in order) takes them as it did before the named
 * ones were added.
 */
function predictRequest(sample: z.ZodType, maxRows?: number) {
  const rows = rowListSchema(sample, maxRows);
  return z
    .strictObject({
      // "" as TF Serving reads it (predict_util.cc: an empty signature_name is the default key),
      // and as the metadata's model_spec here shows it: a client echoing that spec is served.
      signature_name: z
        .enum([SERVING_SIGNATURE, ''])
        .optional()
        .meta({
          description: `TF Serving's signature key: every model has one signature, "${SERVING_SIGNATURE}" (TF Serving's default key; "" means it too, as in TF Serving); another name is a 400, as TF Serving answers for a signature the model does not have`,
        }),
      instances: plainOrNamed(
        rows,
        rowListSchema(namedInput(sample), maxRows),
        `expected a list of samples, or of {"${INPUT_TENSOR}": sample} objects`,
      )
        .optional()
        .meta({
          description: `Row format: one sample per instance, ${rowLimit}; every instance a sample, or every one an object naming the input (\`{"${INPUT_TENSOR}": sample}\`, TF Serving's named form); the answer is \`predictions\``,
        }),
      inputs: plainOrNamed(
        rows,
        namedInput(rows),
        `expected a list of samples, or {"${INPUT_TENSOR}": [sample, …]}`,
      )
        .optional()
        .meta({
          description: `Columnar format: the batched input tensor [N, ...input_shape] (a list of samples), ${rowLimit}, or an object naming it (\`{"${INPUT_TENSOR}": [sample, …]}\`, TF Serving's named form); the answer is \`outputs\``,
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
export const predictRequestSchema = predictRequest(anySampleSchema()).meta({
  id: 'PredictRequest',
  examples: [
    { instances: [digitsExampleRow] },
    { signature_name: 'serving_default', inputs: [digitsExampleRow] },
    { instances: [{ [INPUT_TENSOR]: digitsExampleRow }] },
    { inputs: { [INPUT_TENSOR]: [digitsExampleRow] } },
  ],
});

/**
 * The same request for one model: samples of its input shape (`[64]`: rows of exactly 64 values;
 * `[1, 8, 8]`: 64 values flat or nested [1][8][8]), at most `maxRows` of them.
 */
export const predictRequestSchemaFor = (inputShape: readonly number[], maxRows: number) =>
  predictRequest(new InputShape(inputShape).sampleSchema(), maxRows);

export const predictQuerySchema = z.strictObject({
  fused: queryFlag('true').meta({
    description:
      'false runs the unfused reference path (every layer in eval mode, in plain JavaScript: 20–40 times the fused time, in slices between which the server answers other requests), for debugging',
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

/** A TensorInfo of TF Serving's GetModelMetadata, as proto3 JSON prints it. */
const tensorInfoSchema = z.object({
  dtype: z.literal('DT_FLOAT'),
  tensor_shape: z.object({
    dim: z
      .array(z.object({ size: z.string(), name: z.string() }))
      .meta({ description: 'Each dimension; its size an int64 as a string, "-1" for the batch' }),
    unknown_rank: z.boolean(),
  }),
  name: z.string(),
});

/** TF Serving's GetModelMetadataResponse fields of the metadata answer. */
const getModelMetadataFields = {
  model_spec: z
    .object({
      name: z.string(),
      signature_name: z.string(),
      version: z.string().meta({ description: 'The version, an int64 as a string' }),
    })
    .meta({ description: "TF Serving's ModelSpec of the version described" }),
  metadata: z
    .object({
      signature_def: z.object({
        signature_def: z.record(
          z.string(),
          z.object({
            inputs: z.record(z.string(), tensorInfoSchema),
            outputs: z.record(z.string(), tensorInfoSchema),
            method_name: z.string(),
          }),
        ),
      }),
    })
    .meta({
      description: `TF Serving's GetModelMetadataResponse metadata: the SignatureDefMap of the one signature, "${SERVING_SIGNATURE}", method tensorflow/serving/predict. Its input "${INPUT_TENSOR}" [-1, ...input_shape] is the name TF Serving's named predict forms and the Open Inference Protocol use; its output is the tensor predict answers under \`predictions\` / \`outputs\` ("probabilities" of a classifier, "predictions" of a regression) [-1, outputs]`,
    }),
};

/** What metadata shows of a training's metrics.json. */
export const trainingMetricsViewSchema = trainingMetricsSchema
  .pick({
    test: true,
    best_epoch: true,
    weights_epoch: true,
    seed: true,
    data_sha256: true,
    wall_time_ms: true,
  })
  .strict();

/** What metadata shows of a recalibration's metrics.json: its report without the lineage. */
export const recalibrationMetricsViewSchema = z.strictObject(
  recalibrationMetricsSchema.pick({
    format: true,
    mode: true,
    prior_strength: true,
    batch_size: true,
    batches: true,
    skipped: true,
    samples: true,
    data_sha256: true,
    layers: true,
  }).shape,
);

/**
 * GET /v1/models/{name}/metadata (and one version's): normserve's description of the version,
 * and TF Serving's GetModelMetadataResponse (`model_spec`, `metadata`) beside it.
 */
export const versionMetadataSchema = z
  .looseObject({
    ...getModelMetadataFields,
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
        "config.json's training record (npm run train: feature_names, seed, epochs_run, best_epoch, weights_epoch — the epoch whose weights the version holds, absent from records written before it — test_accuracy, recipe, …); for a recalibrated version (which keeps its parent's) without test_accuracy, which was measured with trained_version's statistics",
    }),
    trained_version: z.number().int().meta({
      description:
        'The version that training produced: this one, or for a recalibrated version the first of its recalibration chain (its metadata has the test metrics of the training)',
    }),
    metrics: z.union([trainingMetricsViewSchema, recalibrationMetricsViewSchema]).nullable().meta({
      description:
        "From metrics.json (docs/model-format.md#metricsjson): a training's test, best_epoch, weights_epoch (when recorded), seed, data_sha256 and wall_time_ms; a recalibration's report (format normserve.recalibration/v1: mode, samples, data_sha256, layers, and batch_size, batches, skipped or prior_strength); null when absent or not one of metrics.json's formats",
    }),
    provenance: z.unknown(),
  })
  .meta({
    description:
      "What a client needs to call the version, and what compilation did to it; `model_spec` and `metadata` are TF Serving's GetModelMetadataResponse",
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
        model_spec: { name: 'digits', signature_name: '', version: '1' },
        metadata: {
          signature_def: {
            signature_def: {
              serving_default: {
                inputs: {
                  input: {
                    dtype: 'DT_FLOAT',
                    tensor_shape: {
                      dim: [
                        { size: '-1', name: '' },
                        { size: '64', name: '' },
                      ],
                      unknown_rank: false,
                    },
                    name: 'input',
                  },
                },
                outputs: {
                  probabilities: {
                    dtype: 'DT_FLOAT',
                    tensor_shape: {
                      dim: [
                        { size: '-1', name: '' },
                        { size: '10', name: '' },
                      ],
                      unknown_rank: false,
                    },
                    name: 'probabilities',
                  },
                },
                method_name: 'tensorflow/serving/predict',
              },
            },
          },
        },
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
