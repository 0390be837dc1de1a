import { z } from 'zod';
import { NormserveError } from '../../errors/index.js';
import {
  type AvailableVersion,
  type ModelSnapshot,
  type PredictOutput,
  predict,
} from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { recordInference } from '../request-context.js';
import { errorResponses, modelNameParam, versionParam } from '../schemas/common.js';
import {
  modelStatusSchema,
  predictQuerySchema,
  predictRequestSchema,
  predictResponseSchema,
} from '../schemas/tf-serving.js';

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

/** Metadata of one served version: what a client needs to call it and what compilation did. */
export function versionMetadata(served: AvailableVersion) {
  const { config, metrics } = served.checkpoint;
  const plan = served.compiled.plan;
  const m = metrics as
    | {
        test?: unknown;
        best_epoch?: unknown;
        seed?: unknown;
        data_sha256?: unknown;
        wall_time_ms?: unknown;
      }
    | undefined;
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

const metadataSchema = z.looseObject({
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
});

const modelsListSchema = z.object({
  models: z.array(
    z.object({
      name: z.string(),
      active_version: z.number().int().nullable(),
      state: z.enum(['AVAILABLE', 'UNAVAILABLE']),
      versions: z.array(
        z.object({
          version: z.number().int(),
          state: z.enum(['AVAILABLE', 'FAILED']),
          active: z.boolean(),
          reason: z.string().optional(),
        }),
      ),
    }),
  ),
});

export function listModel(model: ModelSnapshot) {
  return {
    name: model.name,
    active_version: model.active ?? null,
    state: model.active === undefined ? ('UNAVAILABLE' as const) : ('AVAILABLE' as const),
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
  const nameParams = z.object({ name: modelNameParam });
  const versionParams = z.object({ name: modelNameParam, version: versionParam });

  app.get(
    '/v1/models',
    {
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
      schema: {
        tags: ['models'],
        summary: 'Model status (TF Serving GetModelStatus): every version',
        params: nameParams,
        response: { 200: modelStatusSchema, ...errorResponses },
      },
    },
    async (request) => ({ model_version_status: versionStatus(registry.get(request.params.name)) }),
  );

  app.get(
    '/v1/models/:name/versions',
    {
      schema: {
        tags: ['models'],
        summary: 'Versions of a model with states, the active one marked',
        params: nameParams,
        response: { 200: modelsListSchema.shape.models.element, ...errorResponses },
      },
    },
    async (request) => listModel(registry.get(request.params.name)),
  );

  app.get(
    '/v1/models/:name/versions/:version',
    {
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
      return { model_version_status: status };
    },
  );

  app.get(
    '/v1/models/:name/metadata',
    {
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

  const body = predictRequestSchema(config.MAX_BATCH_SIZE);
  const handler = async (
    request: {
      params: { name: string; version?: number };
      body: z.output<typeof body>;
      query: { fused: boolean };
    },
    reply: { header(name: string, value: string): unknown },
    raw: Parameters<typeof recordInference>[0],
  ) => {
    const columnar = request.body.inputs !== undefined;
    const rows = (request.body.instances ?? request.body.inputs)!;
    raw.modelName = request.params.name;
    const out: PredictOutput = predict(registry, {
      model: request.params.name,
      version: request.params.version,
      rows,
      fused: request.query.fused,
      field: columnar ? 'inputs' : 'instances',
    });
    recordInference(raw, {
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
      ...errorResponses,
      503: errorResponses[400].describe('The model has no available version'),
    },
  };
  app.post(
    '/v1/models/:name(^[A-Za-z0-9][A-Za-z0-9._-]*)::predict',
    {
      schema: {
        ...predictSchema,
        summary: 'Predict with the active version (TF Serving REST predict)',
        params: nameParams,
      },
    },
    async (request, reply) => handler(request, reply, request),
  );
  app.post(
    '/v1/models/:name/versions/:version(^[0-9]+)::predict',
    { schema: { ...predictSchema, summary: 'Predict with one version', params: versionParams } },
    async (request, reply) => handler(request, reply, request),
  );
}
