import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isNormserveError, NormserveError } from '../../errors/index.js';
import {
  type AvailableVersion,
  checkInputTensor,
  compileAccepts,
  FP32_BYTES,
  failInput,
  float32Rows,
  inputShapeOf,
  modelMetadata,
  OIP_EXTENSIONS,
  type OutputName,
  outputTensor,
  type PredictOutput,
  type RowSource,
  readFloat32,
  requestedOutputs,
} from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import {
  binaryBody,
  binaryDataSize,
  booleanParameter,
  checkBinaryConsumed,
  HEADER_LENGTH,
  HEADER_LENGTH_NAME,
  OCTET_STREAM,
  splitInferBody,
  tensorBytes,
} from '../binary-infer.js';
import { CONTENT_ENCODING_DOC } from '../content-encoding.js';
import { parseJsonBody } from '../json-body.js';
import { inferResponseJson, outputTensorJson } from '../json-responses.js';
import { recordInference } from '../request-context.js';
import {
  checkFiniteOutputs,
  errorResponses,
  inferenceErrorResponses,
  modelNameParam,
  versionParam,
} from '../schemas/common.js';
import {
  binaryInferHeaderSchema,
  inferRequestSchema,
  inferResponseSchema,
  modelMetadataSchema,
  serverMetadataSchema,
} from '../schemas/open-inference.js';
import { parseWith, validatedByHandler } from '../validation.js';

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Binary requests are recognised by their Inference-Header-Content-Length header, as Triton and
 * KServe do (clients such as tritonclient send no Content-Type): such a body is read as bytes.
 */
function binaryContentType(request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  if (request.headers[HEADER_LENGTH] !== undefined) request.headers['content-type'] = OCTET_STREAM;
  done();
}

/**
 * An application/octet-stream body without Inference-Header-Content-Length is read whole as the
 * JSON header: when that is not JSON, the likely cause is the missing header, so say so.
 */
function withoutLengthHint(error: Error): Error {
  if (!isNormserveError(error) || error.code !== 'INVALID_JSON') return error;
  return new NormserveError(
    error.code,
    `${error.message} (no ${HEADER_LENGTH_NAME} header: a binary body is a JSON header of that many bytes followed by the tensor bytes)`,
    { errors: error.errors, extra: { ...error.extra }, cause: error },
  );
}

type InferBody = z.output<ReturnType<typeof binaryInferHeaderSchema>>;
type InferInput = InferBody['inputs'][number];

/**
 * The input rows of an infer request: from JSON `data`, or from the bytes after a binary body's
 * header (`binary`, undefined for JSON bodies) when the input has `binary_data_size`; `path`
 * names where they came from in error documents.
 */
function readInput(
  body: InferBody,
  binary: Buffer | undefined,
  served: AvailableVersion,
  maxRows: number,
): { source: RowSource; path: string } {
  const shape = inputShapeOf(served);
  const rows = checkInputTensor(body.inputs, shape, maxRows);
  const input: InferInput = body.inputs[0]!;
  const size = binaryDataSize(input.parameters, 'inputs[0].parameters');
  if (size === undefined) {
    if (binary !== undefined && binary.length > 0) checkBinaryConsumed(0, binary.length);
    if (input.data === undefined)
      failInput('inputs[0].data', 'required (or parameters.binary_data_size for binary data)');
    return { source: shape.tensorData(input.data, input.shape, JSON_DATA), path: JSON_DATA };
  }
  if (binary === undefined)
    failInput(
      'inputs[0].parameters.binary_data_size',
      `binary data needs a binary body (Content-Type: ${OCTET_STREAM} with ${HEADER_LENGTH_NAME})`,
    );
  if (input.data !== undefined)
    failInput('inputs[0].data', 'give either data or parameters.binary_data_size, not both');
  checkBinaryConsumed(size, binary!.length);
  const expected = rows * shape.width * FP32_BYTES;
  if (size !== expected)
    failInput(
      'inputs[0].parameters.binary_data_size',
      `shape [${input.shape.join(', ')}] of FP32 is ${expected} bytes, got ${size}`,
    );
  const values = readFloat32(binary!, BINARY_DATA);
  return { source: float32Rows(values, rows, shape.width), path: BINARY_DATA };
}

const JSON_DATA = 'inputs[0].data';
/** The input's bytes after a binary body's JSON header. */
const BINARY_DATA = 'inputs[0].binary_data';

/** Which requested outputs go back as bytes (binary_data, else the request's binary_data_output). */
function binaryOutputs(body: InferBody, count: number): boolean[] {
  const all = booleanParameter(body.parameters, 'binary_data_output', 'parameters') ?? false;
  return Array.from({ length: count }, (_, i) => {
    const output = body.outputs?.[i];
    return booleanParameter(output?.parameters, 'binary_data', `outputs[${i}].parameters`) ?? all;
  });
}

/**
 * The Open Inference Protocol v2 REST API of KServe and Triton
 * (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
 */
export async function openInferenceRoutes(app: AppInstance): Promise<void> {
  const { registry, config, inference } = app.deps;
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
    async () => ({ name: 'normserve', version: app.deps.version, extensions: [...OIP_EXTENSIONS] }),
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

  // Bodies are validated by the handler: a check compiled from the zod schema accepts valid
  // requests fast; anything it refuses is parsed by the schema itself for the error document.
  const body = validatedByHandler(inferRequestSchema());
  const acceptsBody = compileAccepts(body);
  const headerSchema = binaryInferHeaderSchema();
  const acceptsHeader = compileAccepts(headerSchema);
  const parseHeader = (request: FastifyRequest, text: string, lengthGiven: boolean): unknown => {
    if (text.trim() === '') failInput(`headers.${HEADER_LENGTH}`, 'the JSON header is empty');
    let parsed: unknown;
    let error: Error | null = null;
    // The JSON bodies' own parser (synchronous): the same refusals and error positions.
    parseJsonBody(request, text, (e, value) => {
      error = e;
      parsed = value;
    });
    if (error) throw lengthGiven ? error : withoutLengthHint(error);
    return parsed;
  };

  const infer = async (
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
    // JSON bodies arrive parsed; binary ones (the binary tensor data extension) as bytes.
    let parsed: InferBody;
    let binary: Buffer | undefined;
    if (Buffer.isBuffer(request.body)) {
      const lengthHeader = request.headers[HEADER_LENGTH];
      const split = splitInferBody(request.body, lengthHeader);
      binary = split.binary;
      const header = parseHeader(request, split.json, lengthHeader !== undefined);
      parsed = acceptsHeader?.(header)
        ? (header as InferBody)
        : parseWith(headerSchema, header, 'body');
    } else {
      // A refused body is parsed with the header's schema (the same but for an input's `data`,
      // optional there): a missing `data` is then named by readInput, which knows why (binary
      // data without a binary body, or no data at all), instead of "expected array".
      parsed = acceptsBody?.(request.body)
        ? (request.body as InferBody)
        : parseWith(headerSchema, request.body, 'body');
    }
    if (!served) throw unresolved;
    const requested = requestedOutputs(
      served,
      parsed.outputs?.map((o) => o.name),
    );
    const asBytes = binaryOutputs(parsed, requested.length);
    const input = readInput(parsed, binary, served, config.MAX_BATCH_SIZE);
    let out: PredictOutput | Promise<PredictOutput> = inference.infer(
      served,
      input.source,
      true,
      true,
    );
    if (out instanceof Promise) out = await out;
    checkFiniteOutputs(out, (r) => `${input.path} (row ${r})`);
    recordInference(request, out, true);
    void reply.header('X-Model-Version', String(out.version));
    const parts: Buffer[] = [];
    const tensors = requested.map((name: OutputName, i) => {
      const tensor = outputTensor(name, out);
      if (!asBytes[i]) return outputTensorJson(tensor);
      const bytes = tensorBytes(tensor);
      parts.push(bytes);
      return outputTensorJson(tensor, bytes.length);
    });
    const json = inferResponseJson(out, parsed.id, tensors);
    if (parts.length === 0) return reply.type(JSON_TYPE).send(json);
    const response = binaryBody(json, parts);
    return reply
      .header(HEADER_LENGTH_NAME, String(response.headerLength))
      .type(OCTET_STREAM)
      .send(response.body);
  };
  const inferSchema = {
    tags,
    body,
    consumes: ['application/json', OCTET_STREAM],
    description: [
      "JSON (`application/json`, this schema), or the binary tensor data extension: `application/octet-stream` with an `Inference-Header-Content-Length` header giving the byte length of a JSON header (this schema; an input's `data` replaced by `parameters.binary_data_size`) followed by the input's little-endian FP32 bytes.",
      'Outputs with `parameters.binary_data: true` (or all, with the request parameter `binary_data_output: true`) are returned the same way: `application/octet-stream`, `Inference-Header-Content-Length`, the JSON header with `parameters.binary_data_size` per output, then the bytes (FP32 little-endian; BYTES as 4-byte little-endian length + UTF-8).',
      CONTENT_ENCODING_DOC,
    ].join('\n\n'),
    response: { 200: inferResponseSchema, ...inferenceErrorResponses },
  };
  const onInferRequest = [onRequest, binaryContentType];
  app.post(
    '/v2/models/:name/infer',
    {
      config: { access: 'prediction' },
      onRequest: onInferRequest,
      schema: { ...inferSchema, summary: 'Inference with the active version', params: nameParams },
    },
    infer,
  );
  app.post(
    '/v2/models/:name/versions/:version/infer',
    {
      config: { access: 'prediction' },
      onRequest: onInferRequest,
      schema: { ...inferSchema, summary: 'Inference with one version', params: versionParams },
    },
    infer,
  );
}
