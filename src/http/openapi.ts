import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { REQUEST_ID_PATTERN } from '../service/index.js';
import type { AppInstance } from './app-types.js';
import { CSV } from './csv-media-type.js';
import { problemMediaTypes, type ServingProtocol } from './problem-media-type.js';
import { NDJSON } from './recalibrate-request.js';
import { OTHER_CONTENT_KEY } from './schemas/common.js';
import { digitsExampleRow } from './schemas/tf-serving.js';

/**
 * Route patterns use find-my-way's syntax for TF Serving's `:verb` suffix
 * (`/v1/models/:name(^regex)::predict`); OpenAPI wants `/v1/models/{name}:predict`.
 */
export function openApiPath(url: string): string {
  return url
    .replace(
      /:([A-Za-z_]\w*)(\([^)]*\))?/g,
      (match, name: string, _regex, offset: number, whole: string) =>
        whole[offset - 1] === ':' ? match : `{${name}}`,
    )
    .replace(/::/g, ':');
}

/**
 * The operation's protocol, carried from the route's config to the built document (an `x-` key of
 * a route's schema is copied to its operation) and removed there by problemBodies.
 */
const PROTOCOL_KEY = 'x-normserve-protocol';
/**
 * Carried the same way: the other media types of a route's responses (OTHER_CONTENT_KEY of a
 * response schema, by status), and whether its body may be left out (its schema accepts none).
 */
const OPERATION_CONTENT_KEY = 'x-normserve-response-content';
const OPTIONAL_BODY_KEY = 'x-normserve-optional-body';
const COMPONENTS = '#/components/schemas/';
const PROBLEM_REF = `${COMPONENTS}Problem`;

interface MediaTypeObject {
  schema?: unknown;
  examples?: unknown;
}
type ContentMap = Record<string, MediaTypeObject>;
interface Operation {
  requestBody?: { required?: boolean; content?: ContentMap };
  responses?: Record<string, { content?: ContentMap; headers?: Record<string, unknown> }>;
  [PROTOCOL_KEY]?: ServingProtocol;
  [OPERATION_CONTENT_KEY]?: Record<string, ContentMap>;
  [OPTIONAL_BODY_KEY]?: boolean;
}

/**
 * A route's schema as the document's transform gets it: its responses' other media types are
 * taken out of the response schemas (where @fastify/swagger would drop them beside a `$ref`) and
 * carried to the operation; a body schema that accepts no body marks the body optional.
 */
function carriedToOperation(
  schema: Record<string, unknown>,
  body: unknown,
): Record<string, unknown> {
  const carried: Record<string, unknown> = {};
  const responses = schema.response as Record<string, Record<string, unknown>> | undefined;
  const other: Record<string, ContentMap> = {};
  for (const [status, response] of Object.entries(responses ?? {})) {
    const content = response?.[OTHER_CONTENT_KEY] as ContentMap | undefined;
    if (content === undefined) continue;
    other[status] = content;
    delete response[OTHER_CONTENT_KEY];
  }
  if (Object.keys(other).length > 0) carried[OPERATION_CONTENT_KEY] = other;
  // Fastify reads a request without a body as `undefined`; @fastify/swagger marks every body
  // required (a JSON Schema body needs one), so a zod body that accepts none says otherwise.
  if ((body as z.ZodType | undefined)?.safeParse?.(undefined).success)
    carried[OPTIONAL_BODY_KEY] = true;
  return carried;
}

/** The media types and optional bodies carriedToOperation took out, put where OpenAPI has them. */
function carriedBack(item: Record<string, Operation>): Record<string, Operation> {
  for (const operation of Object.values(item)) {
    if (typeof operation !== 'object' || operation === null) continue;
    for (const [status, content] of Object.entries(operation[OPERATION_CONTENT_KEY] ?? {})) {
      const response = operation.responses?.[status];
      if (response) response.content = { ...response.content, ...content };
    }
    delete operation[OPERATION_CONTENT_KEY];
    if (operation[OPTIONAL_BODY_KEY] && operation.requestBody)
      operation.requestBody.required = false;
    delete operation[OPTIONAL_BODY_KEY];
  }
  return item;
}

/**
 * @fastify/swagger lists every response as application/json; a problem document is sent in the
 * media types of problem-media-type.ts: both for a protocol route's, problem+json for the others'.
 */
function problemBodies(item: Record<string, Operation>): Record<string, Operation> {
  for (const operation of Object.values(item)) {
    if (typeof operation !== 'object' || operation === null) continue;
    const types = problemMediaTypes(operation[PROTOCOL_KEY]);
    delete operation[PROTOCOL_KEY];
    for (const response of Object.values(operation.responses ?? {})) {
      const json = response.content?.['application/json'];
      if ((json?.schema as { $ref?: unknown } | undefined)?.$ref !== PROBLEM_REF) continue;
      response.content = Object.fromEntries(types.map((type) => [type, json!]));
    }
  }
  return item;
}

const float32Row = Buffer.from(Float32Array.from(digitsExampleRow).buffer);
const inferHeader = Buffer.from(
  JSON.stringify({
    inputs: [
      { name: 'input', shape: [1, 64], datatype: 'FP32', parameters: { binary_data_size: 256 } },
    ],
    outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
  }),
);
/** Example binary bodies by route (base64 here; the bytes themselves are sent). */
const binaryExamples: [RegExp, string, Buffer][] = [
  [
    /\/infer$/,
    `a ${inferHeader.length}-byte JSON header, then one digits row`,
    Buffer.concat([inferHeader, float32Row]),
  ],
  [/:(predict|recalibrate)$/, 'one digits row: 64 little-endian float32 values', float32Row],
];

/**
 * Routes list `application/octet-stream` among the types they consume (`consumes`), and
 * @fastify/swagger gives it the JSON body's schema; an octet-stream body is bytes (the route's
 * description says which), so its schema is a binary string, with an example (base64-encoded).
 */
function binaryBodies(path: string, item: Record<string, Operation>): Record<string, Operation> {
  for (const operation of Object.values(item)) {
    const content = operation?.requestBody?.content;
    if (!content?.['application/octet-stream']) continue;
    const example = binaryExamples.find(([pattern]) => pattern.test(path));
    content['application/octet-stream'] = {
      schema: { type: 'string', format: 'binary' },
      ...(example
        ? {
            examples: {
              bytes: {
                summary: `${example[1]} (${example[2].length} bytes, shown base64-encoded)`,
                value: example[2].toString('base64'),
              },
            },
          }
        : {}),
    };
  }
  return item;
}

/** Two digits rows, as the text bodies of :recalibrate carry them. */
const digitsRows = [digitsExampleRow, [...digitsExampleRow].reverse()];
const textExamples: Record<string, { summary: string; value: string }> = {
  [CSV]: {
    summary: 'a header of the model’s feature names (p0 … p63 for digits), then one row per line',
    value: `${[digitsExampleRow.map((_, i) => `p${i}`), ...digitsRows].map((r) => r.join(',')).join('\n')}\n`,
  },
  [NDJSON]: {
    summary: 'one JSON array of features per line',
    value: `${digitsRows.map((r) => JSON.stringify(r)).join('\n')}\n`,
  },
};

/**
 * @fastify/swagger gives every type a route consumes the JSON body's schema; a text upload (CSV,
 * NDJSON) is text (the route's description says what it holds), with an example.
 */
function textBodies(item: Record<string, Operation>): Record<string, Operation> {
  for (const operation of Object.values(item)) {
    const content = operation?.requestBody?.content;
    for (const [type, example] of Object.entries(textExamples)) {
      if (content?.[type])
        content[type] = { schema: { type: 'string' }, examples: { rows: example } };
    }
  }
  return item;
}

const HEADERS = '#/components/headers/';
/** The response headers every operation may send, declared once under `components.headers`. */
const commonHeaderComponents = {
  'X-Request-Id': {
    description:
      "On every response: the client's own X-Request-Id when well-formed, else a new UUID; also the problem document's request_id and the log lines' (docs/observability.md, Logs)",
    schema: { type: 'string', pattern: REQUEST_ID_PATTERN },
  },
  'Retry-After': {
    description:
      'Seconds after which the request may succeed (RFC 9110 §10.2.3), when the server can say; the response’s description names the codes sent with it',
    schema: { type: 'string', pattern: '^[0-9]+$' },
  },
  'WWW-Authenticate': {
    description: 'The scheme the route asks for (RFC 6750 §3): Bearer realm="normserve"',
    schema: { type: 'string' },
  },
} as const;

/**
 * The common headers in each response of `item`: X-Request-Id in all, Retry-After in a 429 or 503,
 * WWW-Authenticate in a 401 (problem.ts and tracing.ts send them).
 */
function commonHeaders(item: Record<string, Operation>): Record<string, Operation> {
  const ref = (name: keyof typeof commonHeaderComponents) => ({ [name]: { $ref: HEADERS + name } });
  for (const operation of Object.values(item)) {
    if (typeof operation !== 'object' || operation === null) continue;
    for (const [status, response] of Object.entries(operation.responses ?? {})) {
      response.headers = {
        ...response.headers,
        ...ref('X-Request-Id'),
        ...(status === '429' || status === '503' ? ref('Retry-After') : {}),
        ...(status === '401' ? ref('WWW-Authenticate') : {}),
      };
    }
  }
  return item;
}

interface ComponentsDocument {
  paths?: Record<string, unknown>;
  components?: { schemas?: Record<string, Record<string, unknown>> };
}

/** Every `$ref` to a component schema in `value`, by the component's name. */
function componentRefs(value: unknown, found: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) componentRefs(v, found);
  else if (typeof value === 'object' && value !== null) {
    for (const [key, v] of Object.entries(value)) {
      if (key === '$ref' && typeof v === 'string' && v.startsWith(COMPONENTS))
        found.add(v.slice(COMPONENTS.length));
      else componentRefs(v, found);
    }
  }
  return found;
}

/** `value` with each `$ref` to a component renamed by `names`. */
function renameRefs(value: unknown, names: Map<string, string>): unknown {
  if (Array.isArray(value)) return value.map((v) => renameRefs(v, names));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, v]) => {
      const name = key === '$ref' && typeof v === 'string' ? v.slice(COMPONENTS.length) : '';
      return [key, names.has(name) ? `${COMPONENTS}${names.get(name)}` : renameRefs(v, names)];
    }),
  );
}

/**
 * The component schemas the document uses, and those alone. fastify-type-provider-zod writes
 * every schema with an id twice, as read (`<id>Input`) and as sent (`<id>`), whether used so or
 * not (PredictRequest is only read, Problem only sent): a client generated from the document
 * would get a type for each. A component used only as read keeps its plain name. Each carries
 * `$id: "#/components/schemas/<id>"`, which JSON Schema 2020-12 §8.2.1 forbids (an `$id` with
 * a non-empty fragment; Ajv refuses the schema): the `$ref`s are the document's own pointers,
 * so no `$id` is needed, and none is kept.
 */
function usedComponents(document: ComponentsDocument): ComponentsDocument {
  const schemas = document.components?.schemas;
  if (schemas === undefined) return document;
  const used = componentRefs(document.paths, new Set());
  for (const name of used) componentRefs(schemas[name], used); // grows as it goes
  const names = new Map<string, string>();
  for (const name of used) {
    const plain = name.replace(/Input$/, '');
    if (plain !== name && !used.has(plain)) names.set(name, plain);
  }
  const kept = Object.fromEntries(
    Object.entries(schemas)
      .filter(([name]) => used.has(name))
      .map(([name, { $id: _id, ...schema }]) => [names.get(name) ?? name, schema]),
  );
  return renameRefs(
    { ...document, components: { ...document.components, schemas: kept } },
    names,
  ) as ComponentsDocument;
}

/**
 * The Content-Security-Policy of /docs: Swagger UI's own files only. Not @fastify/swagger-ui's
 * `staticCSP: true`, which adds `upgrade-insecure-requests` — a browser that opened
 * http://<host>:8080/docs by any name but localhost then fetched the page's scripts and styles
 * over https, which the server does not speak, and showed a blank page — and refuses the inline
 * `style` attributes Swagger UI's React components set (a console error per page). Inline styles
 * are allowed as the dashboard's policy allows them; scripts stay 'self' only.
 */
const DOCS_CSP = {
  'default-src': ["'self'"],
  'base-uri': ["'self'"],
  'connect-src': ["'self'"],
  'font-src': ["'self'", 'data:'],
  'frame-ancestors': ["'self'"],
  'img-src': ["'self'", 'data:'],
  'object-src': ["'none'"],
  'script-src': ["'self'"],
  'script-src-attr': ["'none'"],
  'style-src': ["'self'", "'unsafe-inline'"],
};

/**
 * OpenAPI 3.1 from the routes' zod schemas, served at /openapi.json, interactive docs at /docs.
 * Returns the document as the text /openapi.json sends, built on the first call and kept: the
 * same bytes as serialising `app.swagger()` per request (validation.ts). @fastify/swagger builds
 * it from every route's schema on its first call (74–101 ms on the Intel VM, 0.2–0.4 s for each
 * of two workers starting together on the AMD one: README "Build once"), so a server calls it
 * once it is ready (server-worker.ts) rather than before it listens, where it delayed readiness,
 * or at its first GET /openapi.json, whose event loop it would hold.
 */

export async function registerOpenApi(app: AppInstance): Promise<() => string> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'normserve',
        version: app.deps.version,
        description:
          'Serves batch-normalized networks with BatchNorm folded into the Linear weights, in the conventions of TF Serving (REST predict) and the Open Inference Protocol v2 (KServe, Triton); recalibrates BatchNorm statistics on new unlabeled data. Errors are RFC 9457 problem details, sent as application/json on the TF Serving and Open Inference Protocol routes (as their clients read errors; `Accept: application/problem+json` asks for the RFC 9457 type) and as application/problem+json elsewhere.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      // Relative: "Try it out" on /docs calls the origin that served the page, wherever the
      // service runs (behind a proxy, in a container, on another port).
      servers: [{ url: '/', description: 'the server that serves this document' }],
      components: {
        headers: commonHeaderComponents,
        securitySchemes: {
          adminToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'ADMIN_TOKEN, for recalibration, activation, deletion and jobs',
          },
          apiToken: {
            type: 'http',
            scheme: 'bearer',
            description:
              'API_TOKEN, when it is set (off by default): predictions, the ONNX download, and what the prediction traffic shows (live drift, the BatchNorm pictures of recent rows)',
          },
        },
      },
      tags: [
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'models', description: 'Model status and metadata (TF Serving style)' },
        { name: 'predict', description: 'TF Serving REST predict' },
        { name: 'open inference protocol v2', description: 'KServe / Triton v2 REST' },
        { name: 'admin', description: 'Recalibration, versions and jobs (Bearer ADMIN_TOKEN)' },
        { name: 'operations', description: 'Metrics and API documents' },
      ],
    },
    // @fastify/swagger reads every ':' of a URL as a parameter; the verb's colon travels as %3A
    // and is put back once the document is built.
    transform: (input) => {
      const transformed = jsonSchemaTransform(input);
      const protocol = input.route.config?.protocol;
      return {
        ...transformed,
        ...(transformed.schema
          ? {
              schema: {
                ...transformed.schema,
                ...(protocol ? { [PROTOCOL_KEY]: protocol } : {}),
                ...carriedToOperation(
                  transformed.schema as Record<string, unknown>,
                  input.schema?.body,
                ),
              },
            }
          : {}),
        url: openApiPath(transformed.url ?? input.url).replaceAll(':', '%3A'),
      };
    },
    transformObject: (input) => {
      const document = jsonSchemaTransformObject(input) as { paths?: Record<string, unknown> };
      if (document.paths) {
        document.paths = Object.fromEntries(
          Object.entries(document.paths).map(([path, item]) => [
            path.replaceAll('%3A', ':'),
            commonHeaders(
              carriedBack(
                problemBodies(
                  textBodies(
                    binaryBodies(path.replaceAll('%3A', ':'), item as Record<string, Operation>),
                  ),
                ),
              ),
            ),
          ]),
        );
      }
      return usedComponents(document as ComponentsDocument) as ReturnType<
        typeof jsonSchemaTransformObject
      >;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: DOCS_CSP });
  let text: string | undefined;
  return () => {
    text ??= JSON.stringify(app.swagger());
    return text;
  };
}
