import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { type ErrorLocation, NormserveError } from '../../errors/index.js';
import {
  type AvailableVersion,
  INPUT_TENSOR,
  LABEL_TENSOR,
  PROBABILITIES_TENSOR,
  rawOutputTensor,
  runBatch,
} from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { recordInference } from '../request-context.js';
import {
  checkBatchSize,
  checkFiniteOutputs,
  errorResponses,
  FLOAT32_MAX,
  FLOAT32_RANGE_MESSAGE,
  inferenceErrorResponses,
  modelNameParam,
  versionParam,
} from '../schemas/common.js';
import { quote } from '../schemas/limits.js';
import {
  inferRequestSchema,
  inferResponseSchema,
  modelMetadataSchema,
  serverMetadataSchema,
} from '../schemas/open-inference.js';
import { attributeModel } from './tf-serving.js';

function outputNames(served: AvailableVersion): string[] {
  const { task } = served.checkpoint.config;
  return task === 'classification'
    ? [PROBABILITIES_TENSOR, rawOutputTensor(task), LABEL_TENSOR]
    : [rawOutputTensor(task)];
}

function modelMetadata(served: AvailableVersion, versions: string[]) {
  const { config } = served.checkpoint;
  const width = served.compiled.outputWidth;
  const outputs = outputNames(served).map((name) =>
    name === LABEL_TENSOR
      ? { name, datatype: 'BYTES', shape: [-1] }
      : { name, datatype: 'FP32', shape: [-1, width] },
  );
  return {
    name: config.name,
    versions,
    platform: 'normserve',
    inputs: [{ name: INPUT_TENSOR, datatype: 'FP32', shape: [-1, served.compiled.inputWidth] }],
    outputs,
  };
}

/**
 * The outputs an infer request asks for, each a name of the model's outputs at most once (the
 * first by default): the response is then bounded by rows × the model's output values.
 */
function requestedOutputs(
  served: AvailableVersion,
  outputs: readonly { name: string }[] | undefined,
): string[] {
  const names = outputNames(served);
  if (outputs === undefined) return [names[0]!];
  const seen = new Set<string>();
  outputs.forEach(({ name }, i) => {
    if (!names.includes(name))
      fail(
        `outputs[${i}].name`,
        `unknown output ${quote(name)}; this model has ${names.join(', ')}`,
      );
    if (seen.has(name)) fail(`outputs[${i}].name`, `output "${name}" is asked for twice`);
    seen.add(name);
  });
  return [...seen];
}

const fail = (path: string, message: string): never => {
  throw new NormserveError('INVALID_INPUT', `${path}: ${message}`, { errors: [{ path, message }] });
};

/**
 * Reads the input tensor of an infer request into a float32 matrix: one FP32 tensor named
 * "input" of shape [N, features], data flat (row-major) or nested by rows, finite numbers only.
 */
function readInput(
  body: z.output<ReturnType<typeof inferRequestSchema>>,
  width: number,
  maxRows: number,
): { data: Float32Array; rows: number } {
  if (body.inputs.length !== 1)
    fail(
      'inputs',
      `this model takes exactly one input tensor ("${INPUT_TENSOR}"), got ${body.inputs.length}`,
    );
  const input = body.inputs[0]!;
  if (input.name !== INPUT_TENSOR)
    fail(
      'inputs[0].name',
      `unknown input ${quote(input.name)}; the model's input is "${INPUT_TENSOR}"`,
    );
  if (input.datatype !== 'FP32')
    fail('inputs[0].datatype', `expected "FP32", got ${quote(input.datatype)}`);
  const shape = input.shape;
  if (shape.length !== 2 || shape[1] !== width)
    fail('inputs[0].shape', `expected [N, ${width}], got [${shape.join(', ')}]`);
  const rows = shape[0]!;
  if (rows < 1) fail('inputs[0].shape', 'at least one row is required');
  checkBatchSize('inputs[0].shape', rows, maxRows);
  const data = new Float32Array(rows * width);
  const values = input.data;
  const errors: ErrorLocation[] = [];
  const put = (v: unknown, at: number, path: string) => {
    if (typeof v !== 'number' || !Number.isFinite(v))
      errors.push({ path, message: 'expected a finite number' });
    else if (Math.abs(v) > FLOAT32_MAX) errors.push({ path, message: FLOAT32_RANGE_MESSAGE });
    else data[at] = v;
  };
  if (values.length === rows * width && values.every((v) => !Array.isArray(v))) {
    for (let i = 0; i < values.length && errors.length < 10; i++)
      put(values[i], i, `inputs[0].data[${i}]`);
  } else if (values.length === rows && values.every(Array.isArray)) {
    for (let r = 0; r < rows && errors.length < 10; r++) {
      const row = values[r] as unknown[];
      if (row.length !== width) {
        errors.push({
          path: `inputs[0].data[${r}]`,
          message: `expected ${width} values, got ${row.length}`,
        });
        continue;
      }
      for (let c = 0; c < width; c++) put(row[c], r * width + c, `inputs[0].data[${r}][${c}]`);
    }
  } else {
    fail(
      'inputs[0].data',
      `expected ${rows * width} numbers (flat) or ${rows} rows of ${width} for shape [${rows}, ${width}]`,
    );
  }
  if (errors.length > 0)
    throw new NormserveError('INVALID_INPUT', `${errors[0]!.path}: ${errors[0]!.message}`, {
      errors,
    });
  return { data, rows };
}

/**
 * The Open Inference Protocol v2 REST API of KServe and Triton
 * (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
 */
export async function openInferenceRoutes(app: AppInstance): Promise<void> {
  const { registry, config } = app.deps;
  const onRequest = attributeModel(registry);
  const nameParams = z.object({ name: modelNameParam });
  const versionParams = z.object({ name: modelNameParam, version: versionParam });
  const tags = ['open inference protocol v2'];

  app.get(
    '/v2',
    {
      config: { access: 'public' },
      schema: { tags, summary: 'Server metadata', response: { 200: serverMetadataSchema } },
    },
    async () => ({ name: 'normserve', version: app.deps.version, extensions: [] }),
  );
  app.get(
    '/v2/health/live',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Server liveness',
        response: { 200: z.object({ live: z.boolean() }).meta({ examples: [{ live: true }] }) },
      },
    },
    async () => ({ live: true }),
  );
  const readySchema = z.object({ ready: z.boolean() });
  app.get(
    '/v2/health/ready',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Server readiness: every model has an available version',
        response: {
          200: readySchema.meta({ examples: [{ ready: true }] }),
          503: readySchema.meta({
            description: 'Some model has no available version, or the repository is empty',
            examples: [{ ready: false }],
          }),
        },
      },
    },
    async (_request, reply) => {
      const ready = registry.isReady();
      return reply.code(ready ? 200 : 503).send({ ready });
    },
  );

  const versionsOf = (name: string) =>
    [...registry.get(name).versions.values()]
      .filter((v) => v.state === 'AVAILABLE')
      .map((v) => String(v.version));

  app.get(
    '/v2/models/:name',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags,
        summary: 'Model metadata (active version)',
        params: nameParams,
        response: { 200: modelMetadataSchema, ...errorResponses },
      },
    },
    async (request) =>
      modelMetadata(registry.resolve(request.params.name), versionsOf(request.params.name)),
  );
  app.get(
    '/v2/models/:name/versions/:version',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags,
        summary: 'Model metadata (one version)',
        params: versionParams,
        response: { 200: modelMetadataSchema, ...errorResponses },
      },
    },
    async (request) =>
      modelMetadata(registry.resolve(request.params.name, request.params.version), [
        String(request.params.version),
      ]),
  );

  const modelReady = z.object({ name: z.string(), ready: z.boolean() });
  const readyResponses = {
    200: modelReady.meta({ examples: [{ name: 'digits', ready: true }] }),
    ...errorResponses,
    503: modelReady.meta({
      description: 'Known model with no available version',
      examples: [{ name: 'digits', ready: false }],
    }),
  };
  const readyHandler = (name: string, version?: number) => {
    const model = registry.get(name);
    const v = version ?? model.active;
    const served = v === undefined ? undefined : model.versions.get(v);
    if (version !== undefined && !served)
      throw new NormserveError('VERSION_NOT_FOUND', `model "${name}" has no version ${version}`);
    return { name, ready: served?.state === 'AVAILABLE' };
  };
  app.get(
    '/v2/models/:name/ready',
    {
      config: { access: 'public' },
      onRequest,
      schema: { tags, summary: 'Model readiness', params: nameParams, response: readyResponses },
    },
    async (request, reply) => {
      const body = readyHandler(request.params.name);
      return reply.code(body.ready ? 200 : 503).send(body);
    },
  );
  app.get(
    '/v2/models/:name/versions/:version/ready',
    {
      config: { access: 'public' },
      onRequest,
      schema: {
        tags,
        summary: 'Model version readiness',
        params: versionParams,
        response: readyResponses,
      },
    },
    async (request, reply) => {
      const body = readyHandler(request.params.name, request.params.version);
      return reply.code(body.ready ? 200 : 503).send(body);
    },
  );

  const body = inferRequestSchema();
  const infer = async (
    request: FastifyRequest & {
      params: { name: string; version?: number };
      body: z.output<typeof body>;
    },
    reply: FastifyReply,
  ) => {
    const served = registry.resolve(request.params.name, request.params.version);
    const requested = requestedOutputs(served, request.body.outputs);
    const { data, rows } = readInput(
      request.body,
      served.compiled.inputWidth,
      config.MAX_BATCH_SIZE,
    );
    const out = runBatch(served, data, rows);
    checkFiniteOutputs(out.outputs, rows, out.outputWidth, (r) => `inputs[0].data (row ${r})`);
    recordInference(request, {
      model: out.model,
      version: out.version,
      rows,
      computeMs: out.computeMs,
      fused: true,
    });
    reply.header('X-Model-Version', String(out.version));
    const tensor = (name: string) => {
      switch (name) {
        case PROBABILITIES_TENSOR:
          return {
            name,
            datatype: 'FP32',
            shape: [rows, out.outputWidth],
            data: Array.from(out.probabilities!),
          };
        case LABEL_TENSOR:
          return { name, datatype: 'BYTES', shape: [rows], data: out.labels! };
        default:
          return {
            name,
            datatype: 'FP32',
            shape: [rows, out.outputWidth],
            data: Array.from(out.outputs),
          };
      }
    };
    return {
      model_name: out.model,
      model_version: String(out.version),
      ...(request.body.id !== undefined ? { id: request.body.id } : {}),
      outputs: requested.map(tensor),
    };
  };
  const inferSchema = {
    tags,
    body,
    response: { 200: inferResponseSchema, ...inferenceErrorResponses },
  };
  app.post(
    '/v2/models/:name/infer',
    {
      config: { access: 'prediction' },
      onRequest,
      schema: { ...inferSchema, summary: 'Inference with the active version', params: nameParams },
    },
    infer,
  );
  app.post(
    '/v2/models/:name/versions/:version/infer',
    {
      config: { access: 'prediction' },
      onRequest,
      schema: { ...inferSchema, summary: 'Inference with one version', params: versionParams },
    },
    infer,
  );
}
