import {
  modelReadiness,
  OIP_EXTENSIONS,
  oipModelMetadata,
  serverReadiness,
} from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import { binaryContentType, HEADER_LENGTH_NAME, OCTET_STREAM } from '../binary-infer.js';
import { CONTENT_ENCODING_DOC } from '../content-encoding.js';
import { inferBody, inferHandler } from '../infer-request.js';
import { untypedBodyAsJson } from '../json-body.js';
import { predictionBudget } from '../json-budget.js';
import {
  activeVersionErrorResponses,
  errorResponses,
  inferenceErrorResponses,
  jsonOrBinary,
  MODEL_VERSION_HEADER,
  nameParams,
  versionParams,
} from '../schemas/common.js';
import {
  inferResponseSchema,
  modelMetadataSchema,
  modelReadyResponses,
  serverLiveSchema,
  serverMetadataSchema,
  serverReadyResponses,
} from '../schemas/open-inference.js';

/**
 * The Open Inference Protocol v2 REST API of KServe and Triton
 * (https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/).
 */
export async function openInferenceRoutes(app: AppInstance): Promise<void> {
  const { registry } = app.deps;
  const onRequest = attributeModel(registry);
  const tags = ['open inference protocol v2'];
  // Every route answers errors as the protocol's clients read them (problem-media-type.ts).
  const protocol = 'open-inference';

  app.get(
    '/v2',
    {
      config: { access: 'public', protocol },
      schema: { tags, summary: 'Server metadata', response: { 200: serverMetadataSchema } },
    },
    async () => ({ name: 'normserve', version: app.deps.version, extensions: [...OIP_EXTENSIONS] }),
  );
  app.get(
    '/v2/health/live',
    {
      config: { access: 'public', protocol, anyQuery: true },
      schema: { tags, summary: 'Server liveness', response: { 200: serverLiveSchema } },
    },
    async () => ({ live: true }),
  );
  app.get(
    '/v2/health/ready',
    {
      config: { access: 'public', protocol, anyQuery: true },
      schema: {
        tags,
        summary:
          "Server readiness: as /readyz (a model has an available version, and so does every model of the server's start or that has served since; STRICT_READINESS=off: one is enough)",
        response: serverReadyResponses,
      },
    },
    async (_request, reply) => {
      const readiness = serverReadiness(app.deps.phase, registry);
      return reply.code(readiness.ready ? 200 : 503).send(readiness);
    },
  );

  app.get(
    '/v2/models/:name',
    {
      config: { access: 'public', protocol },
      onRequest,
      schema: {
        tags,
        summary: 'Model metadata (active version)',
        params: nameParams,
        response: { 200: modelMetadataSchema, ...activeVersionErrorResponses },
      },
    },
    async (request) => oipModelMetadata(registry, request.params.name),
  );
  app.get(
    '/v2/models/:name/versions/:version',
    {
      config: { access: 'public', protocol },
      onRequest,
      schema: {
        tags,
        summary: 'Model metadata (one version)',
        params: versionParams,
        response: { 200: modelMetadataSchema, ...errorResponses },
      },
    },
    async (request) => oipModelMetadata(registry, request.params.name, request.params.version),
  );

  app.get(
    '/v2/models/:name/ready',
    {
      config: { access: 'public', protocol, anyQuery: true },
      onRequest,
      schema: {
        tags,
        summary: 'Model readiness',
        params: nameParams,
        response: modelReadyResponses,
      },
    },
    async (request, reply) => {
      const body = modelReadiness(registry, request.params.name);
      return reply.code(body.ready ? 200 : 503).send(body);
    },
  );
  app.get(
    '/v2/models/:name/versions/:version/ready',
    {
      config: { access: 'public', protocol, anyQuery: true },
      onRequest,
      schema: {
        tags,
        summary: 'Model version readiness',
        params: versionParams,
        response: modelReadyResponses,
      },
    },
    async (request, reply) => {
      const body = modelReadiness(registry, request.params.name, request.params.version);
      return reply.code(body.ready ? 200 : 503).send(body);
    },
  );

  const infer = inferHandler(app.deps);
  // Millions of empty rows are a 413 before they are parsed (json-budget.ts).
  const jsonBudget = predictionBudget(registry, app.deps.config);
  const inferSchema = {
    tags,
    body: inferBody,
    consumes: ['application/json', OCTET_STREAM],
    description: [
      "JSON (`application/json`, this schema; a body without a Content-Type, as tritonclient and KServe's client send it, is read as JSON), or the binary tensor data extension: `application/octet-stream` with an `Inference-Header-Content-Length` header giving the byte length of a JSON header (this schema; an input's `data` replaced by `parameters.binary_data_size`) followed by the input's little-endian FP32 bytes; with `Inference-Header-Content-Length: 0` (Triton's raw binary request) the body is the input's bytes alone, whole samples, and every output is returned as bytes.",
      'Outputs with `parameters.binary_data: true` (or all, with the request parameter `binary_data_output: true`) are returned the same way: `application/octet-stream`, `Inference-Header-Content-Length`, the JSON header with `parameters.binary_data_size` per output, then the bytes (FP32 little-endian; BYTES as 4-byte little-endian length + UTF-8).',
      CONTENT_ENCODING_DOC,
    ].join('\n\n'),
    response: {
      200: jsonOrBinary(
        inferResponseSchema,
        {
          mediaType: OCTET_STREAM,
          description: `The binary tensor data extension: a JSON header of ${HEADER_LENGTH_NAME} bytes (the JSON answer, but a binary output has \`parameters.binary_data_size\` where its \`data\` would be), then each binary output's bytes in the header's order`,
        },
        'The outputs: JSON, or, when some output asks for binary data, the binary tensor data extension (application/octet-stream)',
        {
          ...MODEL_VERSION_HEADER,
          [HEADER_LENGTH_NAME]: {
            type: 'string',
            description:
              'Binary answers only: the byte length of the JSON header that starts the body',
          },
        },
      ),
      ...inferenceErrorResponses,
    },
  };
  // tritonclient.http and KServe's client post JSON without a Content-Type (json-body.ts).
  const onInferRequest = [onRequest, binaryContentType, untypedBodyAsJson];
  app.post(
    '/v2/models/:name/infer',
    {
      config: { access: 'prediction', protocol, jsonBudget },
      onRequest: onInferRequest,
      schema: { ...inferSchema, summary: 'Inference with the active version', params: nameParams },
    },
    infer,
  );
  app.post(
    '/v2/models/:name/versions/:version/infer',
    {
      config: { access: 'prediction', protocol, jsonBudget },
      onRequest: onInferRequest,
      schema: { ...inferSchema, summary: 'Inference with one version', params: versionParams },
    },
    infer,
  );
}
