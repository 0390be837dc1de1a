import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { NormserveError } from '../../errors/index.js';
import {
  type AvailableVersion,
  type ModelRegistry,
  type ModelSnapshot,
  type PredictOutput,
  predict,
} from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { recordInference } from '../request-context.js';
import {
  checkBatchSize,
  checkFiniteOutputs,
  errorResponses,
  inferenceErrorResponses,
  modelNameParam,
  versionParam,
} from '../schemas/common.js';
import {
  modelStatusSchema,
  predictQuerySchema,
  predictRequestSchema,
  predictResponseSchema,
} from '../schemas/tf-serving.js';

/**
 * An onRequest hook for routes with a `:name` parameter: attributes the request to that model
 * (log line, metric labels), even when it fails later (415, malformed JSON, validation). Only
 * models of the registry are named, so requests for made-up models cannot create label values.
 */
export function attributeModel(registry: ModelRegistry) {
  return async (request: FastifyRequest): Promise<void> => {
    const name = (request.params as { name?: unknown } | undefined)?.name;
    if (typeof name === 'string' && registry.list().some((m) => m.name === name)) {
      request.modelName = name;
    }
  };
}

/** Rows of a flat [rows, width] array as nested arrays for JSON. */
export function toMatrix(data: Float32Array, rows: number, width: number): number[][] {
  const out = new Array<number[]>(rows);
  for (let r = 0; r < rows; r++) out[r] = Array.from(data.subarray(r * width, (r + 1) * width));
  return out;
}

function versionStatus(model: ModelSnapshot, only?: number) {
  return [...model.versions.values()]
    .filter((v) => only === undefined || v.version === only)
    .sort((a, b) => b.version - a.version)
    .map((v) => ({
      version: String(v.version),
      state: v.state,
      status:
        v.state === 'AVAILABLE'
          ? { error_code: 'OK', error_message: '' }
          : { error_code: 'UNKNOWN', error_message: v.reason ?? '' },
      active: model.active === v.version,
    }));
}

/** The fields of metrics.json that metadata reports (any JSON; other fields are left out). */
const trainingMetricsSchema = z.looseObject({
  test: z.unknown(),
  best_epoch: z.unknown(),
  seed: z.unknown(),
  data_sha256: z.unknown(),
  wall_time_ms: z.unknown(),
});

/** Metadata of one served version: what a client needs to call it and what compilation did. */
export function versionMetadata(served: AvailableVersion) {
  const { config, metrics } = served.checkpoint;
  const plan = served.compiled.plan;
  const m = metrics === undefined ? undefined : trainingMetricsSchema.safeParse(metrics).data;
  return {
    name: config.name,
    version: served.version,
    task: config.task,
    input_shape: config.input_shape,
    output_shape: [plan.outputWidth],
    labels: config.labels ?? null,
    description: config.description ?? null,
    layers: config.layers.map((layer, index) => ({
      index,
      ...layer,
      compiled: plan.layers.find((f) => f.index === index)?.fate ?? null,
    })),
    folded_batchnorms: plan.layers
      .filter((f) => f.kind.startsWith('BatchNorm') && f.fate.startsWith('folded'))
      .map((f) => f.index),
    input_transform_folded: plan.inputTransformFolded,
    kernels: plan.steps.map(
      (s) => `${s.op}${s.activation.kind === 'none' ? '' : `+${s.activation.kind}`}`,
    ),
    training: config.training ?? null,
    metrics: m
      ? {
          test: m.test ?? null,
          best_epoch: m.best_epoch ?? null,
          seed: m.seed ?? null,
          data_sha256: m.data_sha256 ?? null,
          wall_time_ms: m.wall_time_ms ?? null,
        }
      : null,
    provenance: config.provenance ?? null,
    loaded_at: served.loadedAt,
  };
}

const metadataSchema = z
  .looseObject({
    name: z.string(),
    version: z.number().int(),
    task: z.enum(['classification', 'regression']),
    input_shape: z.array(z.number().int()),
    output_shape: z.array(z.number().int()),
    labels: z.array(z.string()).nullable(),
    layers: z.array(
      z.looseObject({ index: z.number().int(), type: z.string(), compiled: z.string().nullable() }),
    ),
    folded_batchnorms: z
      .array(z.number().int())
      .meta({ description: 'Indices of the BatchNorm layers folded into Linear weights' }),
    input_transform_folded: z.boolean(),
    kernels: z.array(z.string()),
    training: z.unknown(),
    metrics: z.unknown(),
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
    "Why the model's active-version.json cannot be followed (unreadable, or naming a version that is not available); the version served before stays served, or none at start-up",
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

const modelsListSchema = z
  .object({ models: z.array(modelListing) })
  .meta({ examples: [{ models: [modelListingExample] }] });

/** The problem of a model's active-version record, as the optional status field. */
export const activeRecordStatus = (model: ModelSnapshot) =>
  model.activeProblem !== undefined ? { active_record_error: model.activeProblem } : {};

export function listModel(model: ModelSnapshot) {
  return {
    name: model.name,
    active_version: model.active ?? null,
    state: model.active === undefined ? ('UNAVAILABLE' as const) : ('AVAILABLE' as const),
    ...activeRecordStatus(model),
    versions: [...model.versions.values()]
      .sort((a, b) => a.version - b.version)
      .map((v) => ({
        version: v.version,
        state: v.state,
        active: model.active === v.version,
        ...(v.reason ? { reason: v.reason } : {}),
      })),
  };
}

/**
 * TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest): model status, metadata
 * and predict in row (`instances`) or columnar (`inputs`) format, plus the model list.
 */
export async function tfServingRoutes(app: AppInstance): Promise<void> {
  const { registry, config } = app.deps;
  const onRequest = attributeModel(registry);
  const nameParams = z.object({ name: modelNameParam });
  const versionParams = z.object({ name: modelNameParam, version: versionParam });

  app.get(
    '/v1/models',
    {
      config: { access: 'public' },
      schema: {
        tags: ['models'],
        summary: 'All models with their versions and states',
        response: { 200: modelsListSchema },
      },
    },
    async () => ({ models: registry.list().map(listModel) }),
  );

  app.get(
    '/v1/models/:name',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Model status (TF Serving GetModelStatus): every version',
        params: nameParams,
        response: { 200: modelStatusSchema, ...errorResponses },
      },
    },
    async (request) => {
      const model = registry.get(request.params.name);
      return { model_version_status: versionStatus(model), ...activeRecordStatus(model) };
    },
  );

  app.get(
    '/v1/models/:name/versions',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Versions of a model with states, the active one marked',
        params: nameParams,
        response: {
          200: modelListing.meta({ examples: [modelListingExample] }),
          ...errorResponses,
        },
      },
    },
    async (request) => listModel(registry.get(request.params.name)),
  );

  app.get(
    '/v1/models/:name/versions/:version',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Status of one version (TF Serving GetModelStatus)',
        params: versionParams,
        response: { 200: modelStatusSchema, ...errorResponses },
      },
    },
    async (request) => {
      const model = registry.get(request.params.name);
      const status = versionStatus(model, request.params.version);
      if (status.length === 0) {
        throw new NormserveError(
          'VERSION_NOT_FOUND',
          `model "${model.name}" has no version ${request.params.version}`,
        );
      }
      return { model_version_status: status, ...activeRecordStatus(model) };
    },
  );

  app.get(
    '/v1/models/:name/metadata',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags: ['models'],
        summary:
          'Metadata of the active version: inputs, labels, layers, folded BatchNorms, training metrics, provenance',
        params: nameParams,
        response: { 200: metadataSchema, ...errorResponses },
      },
    },
    async (request) => versionMetadata(registry.resolve(request.params.name)),
  );

  app.get(
    '/v1/models/:name/versions/:version/metadata',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags: ['models'],
        summary: 'Metadata of one version',
        params: versionParams,
        response: { 200: metadataSchema, ...errorResponses },
      },
    },
    async (request) =>
      versionMetadata(registry.resolve(request.params.name, request.params.version)),
  );

  const body = predictRequestSchema;
  const handler = async (
    request: FastifyRequest & {
      params: { name: string; version?: number };
      body: z.output<typeof body>;
      query: { fused: boolean };
    },
    reply: FastifyReply,
  ) => {
    const columnar = request.body.inputs !== undefined;
    const rows = (request.body.instances ?? request.body.inputs)!;
    checkBatchSize(columnar ? 'inputs' : 'instances', rows.length, config.MAX_BATCH_SIZE);
    const out: PredictOutput = predict(registry, {
      model: request.params.name,
      version: request.params.version,
      rows,
      fused: request.query.fused,
      field: columnar ? 'inputs' : 'instances',
    });
    checkFiniteOutputs(out.outputs, out.rows, out.outputWidth, (r) =>
      columnar ? `inputs[${r}]` : `instances[${r}]`,
    );
    recordInference(request, {
      model: out.model,
      version: out.version,
      rows: out.rows,
      computeMs: out.computeMs,
      fused: request.query.fused,
    });
    reply.header('X-Model-Version', String(out.version));
    const values = toMatrix(out.probabilities ?? out.outputs, out.rows, out.outputWidth);
    return {
      model_version: out.version,
      ...(columnar ? { outputs: values } : { predictions: values }),
      ...(out.labels ? { labels: out.labels } : {}),
    };
  };

  const predictSchema = {
    tags: ['predict'],
    querystring: predictQuerySchema,
    body,
    response: {
      200: predictResponseSchema,
      ...inferenceErrorResponses,
      503: errorResponses[400].describe('The model has no available version'),
    },
  };
  app.post(
    '/v1/models/:name(^[A-Za-z0-9][A-Za-z0-9._-]*)::predict',
    {
      config: { access: 'prediction' },
      onRequest,
      schema: {
        ...predictSchema,
        summary: 'Predict with the active version (TF Serving REST predict)',
        params: nameParams,
      },
    },
    handler,
  );
  app.post(
    '/v1/models/:name/versions/:version(^[0-9]+)::predict',
    {
      config: { access: 'prediction' },
      onRequest,
      schema: { ...predictSchema, summary: 'Predict with one version', params: versionParams },
    },
    handler,
  );
}
