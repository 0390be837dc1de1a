import type { FastifyReply, FastifyRequest } from 'fastify';
import Negotiator from 'negotiator';
import { z } from 'zod';
import {
  type Accepts,
  type AvailableVersion,
  compileAccepts,
  FP32_BYTES,
  failInput,
  float32Bytes,
  float32Rows,
  inputShapeOf,
  type PredictOutput,
  type RowSource,
  readFloat32,
} from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import { OCTET_STREAM } from '../binary-infer.js';
import { CONTENT_ENCODING_DOC } from '../content-encoding.js';
import { predictResponseJson } from '../json-responses.js';
import { beforeVerb } from '../not-found.js';
import { recordInference } from '../request-context.js';
import {
  checkBatchSize,
  checkFiniteOutputs,
  errorResponses,
  inferenceErrorResponses,
  MODEL_NAME_ROUTE_PARAM,
  modelNameParam,
  versionParam,
} from '../schemas/common.js';
import {
  modelStatusSchema,
  modelsListSchema,
  modelVersionsSchema,
  predictQuerySchema,
  predictRequestSchema,
  predictRequestSchemaFor,
  predictResponseSchema,
  versionMetadataSchema,
} from '../schemas/tf-serving.js';
import { parseWith, validatedByHandler } from '../validation.js';
import { listModel } from '../views/model-listing.js';
import { modelStatus, oneVersionStatus } from '../views/model-status.js';
import { versionMetadata } from '../views/version-metadata.js';

type PredictBody = z.output<typeof predictRequestSchema>;

const JSON_TYPE = 'application/json; charset=utf-8';

const ANSWER_TYPES = ['application/json', OCTET_STREAM];

/**
 * Raw float32 outputs when Accept prefers application/octet-stream to JSON, by q-values
 * (`application/octet-stream;q=0, application/json` is JSON); without Accept, with any type or
 * with only types it cannot answer, JSON.
 */
function wantsBinary(request: FastifyRequest): boolean {
  const accept = request.headers.accept?.toLowerCase();
  if (accept === undefined || !accept.includes(OCTET_STREAM)) return false;
  // The form binary clients send, decided without parsing the header.
  if (accept === OCTET_STREAM) return true;
  return new Negotiator(request.raw).mediaType(ANSWER_TYPES) === OCTET_STREAM;
}

/** The probabilities (regression: the outputs) as little-endian float32 rows. */
function sendFloat32(reply: FastifyReply, out: PredictOutput): FastifyReply {
  return reply
    .type(OCTET_STREAM)
    .header('X-Output-Shape', `${out.rows},${out.outputWidth}`)
    .send(float32Bytes(out.probabilities ?? out.outputs));
}

/**
 * TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest): model status, metadata
 * and predict in row (`instances`) or columnar (`inputs`) format, plus the model list.
 */
export async function tfServingRoutes(app: AppInstance): Promise<void> {
  const { registry, config, inference, drift } = app.deps;
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
    `/v1/models/${beforeVerb('name')}`,
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
    async (request) => modelStatus(registry.get(request.params.name), drift),
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
        response: { 200: modelVersionsSchema, ...errorResponses },
      },
    },
    async (request) => listModel(registry.get(request.params.name)),
  );

  app.get(
    `/v1/models/:name/versions/${beforeVerb('version')}`,
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
    async (request) => oneVersionStatus(registry.get(request.params.name), request.params.version),
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
        response: { 200: versionMetadataSchema, ...errorResponses },
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
        response: { 200: versionMetadataSchema, ...errorResponses },
      },
    },
    async (request) =>
      versionMetadata(registry.resolve(request.params.name, request.params.version)),
  );

  // Bodies (and the query, whose errors come after the body's, as Fastify orders them) are
  // validated by the handler: a check compiled per model from the zod schema (samples of the
  // model's input shape, flat or nested, at most MAX_BATCH_SIZE of them) accepts valid requests
  // fast and the samples go straight into the engine's input buffer; anything it refuses takes
  // the general path, whose zod schema and the input shape's reader name every problem.
  const body = validatedByHandler(predictRequestSchema);
  const querystring = validatedByHandler(predictQuerySchema);
  const accepts = new WeakMap<AvailableVersion, Accepts | undefined>();
  const acceptsFor = (served: AvailableVersion) => {
    if (!accepts.has(served)) {
      accepts.set(
        served,
        compileAccepts(predictRequestSchemaFor(served.compiled.inputShape, config.MAX_BATCH_SIZE)),
      );
    }
    return accepts.get(served);
  };
  const fusedOf = (query: unknown): boolean => {
    // No query string is the common case: the default without running the schema.
    for (const _ in query as object) return parseWith(querystring, query, 'querystring').fused;
    return true;
  };

  const handler = async (
    request: FastifyRequest & { params: { name: string; version?: number } },
    reply: FastifyReply,
  ) => {
    let served: AvailableVersion | undefined;
    let unresolved: unknown;
    try {
      served = inference.resolve(request.params.name, request.params.version);
    } catch (e) {
      unresolved = e;
    }
    if (Buffer.isBuffer(request.body)) return predictBinary(request, reply, served, unresolved);
    let source: RowSource;
    let columnar: boolean;
    let fused: boolean;
    const raw = request.body as PredictBody;
    if (served && acceptsFor(served)?.(raw)) {
      columnar = raw.inputs !== undefined;
      source = inputShapeOf(served).samples((raw.instances ?? raw.inputs)!);
      fused = fusedOf(request.query);
    } else {
      const parsed = parseWith(body, raw, 'body');
      fused = fusedOf(request.query);
      columnar = parsed.inputs !== undefined;
      const instances = (parsed.instances ?? parsed.inputs)!;
      const field = columnar ? 'inputs' : 'instances';
      checkBatchSize(field, instances.length, config.MAX_BATCH_SIZE);
      if (!served) throw unresolved;
      source = inputShapeOf(served).instances(instances, field);
    }
    let out: PredictOutput | Promise<PredictOutput> = inference.infer(served, source, fused, true);
    if (out instanceof Promise) out = await out;
    checkFiniteOutputs(out, (r) => (columnar ? `inputs[${r}]` : `instances[${r}]`));
    recordInference(request, out, fused);
    void reply.header('X-Model-Version', String(out.version));
    if (wantsBinary(request)) return sendFloat32(reply, out);
    return reply.type(JSON_TYPE).send(predictResponseJson(out, columnar));
  };

  /**
   * `Content-Type: application/octet-stream`: little-endian float32 rows of the model's width
   * (a [C, H, W] sample row-major, as PyTorch stores it), back to back; the row count follows
   * from the length.
   */
  const predictBinary = async (
    request: FastifyRequest,
    reply: FastifyReply,
    served: AvailableVersion | undefined,
    unresolved: unknown,
  ) => {
    const bytes = request.body as Buffer;
    const fused = fusedOf(request.query);
    if (!served) throw unresolved;
    const width = served.compiled.inputWidth;
    const rowBytes = width * FP32_BYTES;
    if (bytes.length === 0) failInput('body', 'at least one row is required');
    if (bytes.length % rowBytes !== 0) {
      failInput(
        'body',
        `${bytes.length} bytes is not a whole number of rows (${width} float32 values, ${rowBytes} bytes each)`,
      );
    }
    const rows = bytes.length / rowBytes;
    checkBatchSize('body', rows, config.MAX_BATCH_SIZE);
    const values = readFloat32(bytes, 'body');
    let out: PredictOutput | Promise<PredictOutput> = inference.infer(
      served,
      float32Rows(values, rows, width),
      fused,
      true,
    );
    if (out instanceof Promise) out = await out;
    checkFiniteOutputs(out, (r) => `body (row ${r})`);
    recordInference(request, out, fused);
    void reply.header('X-Model-Version', String(out.version));
    if (wantsBinary(request)) return sendFloat32(reply, out);
    return reply.type(JSON_TYPE).send(predictResponseJson(out, false));
  };

  const predictSchema = {
    tags: ['predict'],
    querystring,
    body,
    consumes: ['application/json', OCTET_STREAM],
    description: [
      "JSON (this schema), or `Content-Type: application/octet-stream`: little-endian float32 rows of the model's input width, back to back (the row count follows from the length); a sample of a multi-dimensional input_shape is its values in row-major order (64 for [1, 8, 8]).",
      "The answer is JSON (this schema), or, with `Accept: application/octet-stream`, the probabilities (regression: the outputs) as little-endian float32 rows of the model's output width.",
      CONTENT_ENCODING_DOC,
    ].join('\n\n'),
    response: {
      200: predictResponseSchema,
      ...inferenceErrorResponses,
      503: errorResponses[400].describe('The model has no available version'),
    },
  };
  app.post(
    `/v1/models/${MODEL_NAME_ROUTE_PARAM}::predict`,
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
    `/v1/models/:name/versions/${beforeVerb('version')}::predict`,
    {
      config: { access: 'prediction' },
      onRequest,
      schema: { ...predictSchema, summary: 'Predict with one version', params: versionParams },
    },
    handler,
  );
}
