import { z } from 'zod';
import { expecting } from '../../errors/index.js';
import {
  batchLimit,
  MODEL_NAME_CHARS,
  MODEL_NAME_FIRST_CHARS,
  modelNameSchema,
  OVERLOADED_RETRY_AFTER_SECONDS,
  ROW_ARRAY_MESSAGE,
  SHUTTING_DOWN_REASON,
  STARTING_REASON,
  VERSION_NAME_PATTERN,
} from '../../service/index.js';
import { DEFAULT_CONTAINERS, DEFAULT_STRINGS } from '../json-budget.js';
import { type HeaderDoc, modelVersionHeaderDoc } from '../model-version-header.js';

/** The rows of a body that are not an array. */
export const ROWS_ARRAY_MESSAGE = 'expected an array of rows';

/**
 * One sample of a prediction request for any model: an array, checked afterwards by the service
 * against the version that serves the request (src/service/input-shape.ts names each offending
 * place). A model's own requests use its `InputShape.sampleSchema()` instead, compiled once per
 * input shape for the fast path. The OpenAPI document and the error reports use this one, so the
 * general schema depends on neither the configuration nor the model.
 */
export const anySampleSchema = () =>
  z.array(z.unknown(), { error: ROW_ARRAY_MESSAGE }).meta({
    description:
      "One sample: the model's input_shape flat (e.g. 64 numbers) or nested (e.g. [1][8][8]), finite float32 values",
  });

/**
 * A list of at least one `row` (a sample, or a sample wrapped in TF Serving's named form); with
 * `maxRows`, at most that many (a model's schema). Without it the row count is left to the
 * handler (see checkBatchSize).
 */
export function rowListSchema<T extends z.ZodType>(row: T, maxRows?: number) {
  const rows = z.array(row, { error: ROWS_ARRAY_MESSAGE }).min(1, 'at least one row is required');
  return maxRows === undefined ? rows : rows.max(maxRows, batchLimit(maxRows));
}

/** A query-string flag spelled exactly `true` or `false`, absent = `defaultValue`, as a boolean. */
export const queryFlag = (defaultValue: 'true' | 'false') =>
  z
    .enum(['true', 'false'])
    .default(defaultValue)
    .transform((v) => v === 'true');

/**
 * The `:name` of a route whose last segment goes on after the name (`/v1/models/digits:predict`):
 * find-my-way needs the name's characters to find where `:predict` starts. The pattern's length
 * and anchoring are checked by `modelNameParam` afterwards.
 */
export const MODEL_NAME_ROUTE_PARAM = `:name(^[${MODEL_NAME_FIRST_CHARS}][${MODEL_NAME_CHARS}]*)`;

export const modelNameParam = modelNameSchema.meta({
  description: 'Model name (a directory of the model repository)',
  example: 'digits',
});

/**
 * The one rule for an integer in a URL, a path segment or a query parameter: decimal digits, no
 * sign, no leading zero, at most 15 (a safe integer) — a version directory's name
 * (VERSION_NAME_PATTERN, the path's version), and 0, which a query parameter's range refuses
 * with its own message. Number() alone would read '0x10', '1e1', '0b1', ' 16 ' and '16.0' too.
 */
export const URL_INTEGER_PATTERN = new RegExp(
  `^(?:0|${VERSION_NAME_PATTERN.source.slice(1, -1)})$`,
);

/**
 * A query parameter's text as a number when it keeps URL_INTEGER_PATTERN; any other text stays
 * text, for the schema to refuse with a message that quotes what was sent.
 */
export const integerText = (v: unknown): unknown =>
  typeof v === 'string' && URL_INTEGER_PATTERN.test(v) ? Number(v) : v;

export const versionParam = z
  .string()
  .regex(VERSION_NAME_PATTERN, { error: expecting('a positive integer') })
  .transform(Number)
  .meta({ description: 'Model version (a positive integer)', example: '1' });

/** The path parameters of a model's routes (`/…/models/:name…`). */
export const nameParams = z.object({ name: modelNameParam });

/** What the readiness routes (/readyz, /v2/health/ready) answer 503 for. */
export const NOT_READY_DESCRIPTION =
  'Some model has no available version (STRICT_READINESS=off: no model has one), or the repository is empty; or the server is starting (reason: starting): HTTP listens, the gRPC port not yet; or it is shutting down (reason: shutting_down): from SIGTERM on it still serves requests for SHUTDOWN_DELAY_MS, so that load balancers take it out first';

/** The readiness routes' `reason`, present when the server is starting or shutting down. */
export const notReadyReason = z
  .enum([STARTING_REASON, SHUTTING_DOWN_REASON])
  .optional()
  .meta({
    description: `${STARTING_REASON}: HTTP listens but the gRPC port (GRPC_PORT) does not yet, for a fraction of a second after the start; ${SHUTTING_DOWN_REASON}: a SIGTERM or SIGINT came; the server still serves during SHUTDOWN_DELAY_MS, then drains`,
  });

/** The path parameters of one version's routes (`/…/models/:name/versions/:version…`). */
export const versionParams = z.object({ name: modelNameParam, version: versionParam });

/**
 * RFC 9457 §3.2 extension members: those a problem of some code carries (docs/errors.md, "others").
 * The schema is open (a loose object), as §3.2 asks of clients ("ignore any extensions they don't
 * recognize"): a strict client generated from it accepts every problem the server sends.
 */
const problemExtensions = {
  position: z
    .object({
      line: z.number().int().meta({ description: 'From 1' }),
      column: z.number().int().meta({ description: 'From 1' }),
      offset: z.number().int().meta({ description: 'From 0, in characters of the body' }),
    })
    .optional()
    .meta({
      description:
        'INVALID_JSON of a syntax error or of a bare NaN / Infinity: where in the body it is',
    }),
  job_id: z.string().optional().meta({
    description: 'RECALIBRATION_IN_PROGRESS held by a server job: its id (GET /v1/jobs/{id})',
  }),
  job: z.string().optional().meta({
    description: 'RECALIBRATION_IN_PROGRESS held by a server job: its URL path, /v1/jobs/{id}',
  }),
  holder: z
    .object({
      cli: z.string().meta({ description: 'The command-line program, e.g. recalibrate' }),
      host: z.string(),
      pid: z.number().int(),
      since: z.string().meta({ description: 'When it took the lock (ISO 8601)' }),
    })
    .optional()
    .meta({
      description:
        'RECALIBRATION_IN_PROGRESS held by a command-line program, whose job no server knows',
    }),
  errno: z.string().optional().meta({
    description: 'STORAGE_FULL, STORAGE_UNAVAILABLE: the file system’s error (ENOSPC, EROFS…)',
  }),
};

export const problemSchema = z
  .looseObject({
    type: z.string().meta({ example: 'urn:normserve:problem:invalid-input' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string().optional().meta({
      description:
        "The request's path and query string; absent only when no request line was read (headers that did not arrive within REQUEST_TIMEOUT_MS, malformed HTTP)",
    }),
    code: z.string().meta({ description: 'Stable error code from the catalogue (docs/errors.md)' }),
    error: z.string().meta({
      description:
        'The message, under the name TF Serving and Open Inference Protocol clients read',
    }),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .meta({ description: 'For validation errors: each offending place' }),
    request_id: z.string().meta({
      description: 'The request id, as in the X-Request-Id response header and the log line',
    }),
    ...problemExtensions,
  })
  .meta({
    id: 'Problem',
    description:
      "RFC 9457 problem details: application/problem+json, or application/json on the TF Serving and Open Inference Protocol routes (the protocols' clients read that type), unless the request's Accept names application/problem+json. Some codes add extension members (RFC 9457 §3.2; those listed here); a client ignores any it does not know",
    examples: [
      {
        type: 'urn:normserve:problem:invalid-input',
        title: 'Invalid input',
        status: 400,
        detail: 'instances[3][17]: expected a finite number, got "x"',
        instance: '/v1/models/digits:predict',
        code: 'INVALID_INPUT',
        error: 'instances[3][17]: expected a finite number, got "x"',
        errors: [{ path: 'instances[3][17]', message: 'expected a finite number, got "x"' }],
        request_id: '08c8e3e7-e7c3-4c96-a9f8-202e0877f408',
      },
    ],
  });

/** Error responses every route may give, for the OpenAPI document. */
export const errorResponses = {
  400: problemSchema.describe('Invalid input or malformed JSON'),
  404: problemSchema.describe('Unknown model, version or route'),
  413: problemSchema.describe(
    `Body larger than BODY_LIMIT_BYTES, or a JSON body with more than ${DEFAULT_CONTAINERS} arrays and objects or more than ${DEFAULT_STRINGS} strings and keys, refused before it is parsed (BODY_TOO_LARGE)`,
  ),
  415: problemSchema.describe(
    'Content-Type other than application/json, or with a charset other than UTF-8',
  ),
} as const;

/** Error responses of the routes that answer for a model's active version. */
export const activeVersionErrorResponses = {
  ...errorResponses,
  503: problemSchema.describe(
    'MODEL_UNAVAILABLE: the model has no available version (none loaded, or its active-version record names one that cannot serve); with Retry-After (seconds): the next scan of the repository (MODEL_POLL_INTERVAL_MS), absent when polling is off',
  ),
} as const;

/** Error responses of the inference routes, where 413 also means too many rows. */
export const inferenceErrorResponses = {
  ...activeVersionErrorResponses,
  413: problemSchema.describe(
    `Body larger than BODY_LIMIT_BYTES (BODY_TOO_LARGE); or more rows than MAX_BATCH_SIZE, or a JSON body with more arrays and objects than that many samples of the model's input shape can be written with, refused before it is parsed (BATCH_TOO_LARGE)`,
  ),
  503: problemSchema.describe(
    `${activeVersionErrorResponses[503].description}. Or OVERLOADED, with Retry-After: ${OVERLOADED_RETRY_AFTER_SECONDS}: MAX_QUEUED_REQUESTS requests already wait for the engine, HTTP and gRPC (dynamic batching, ENGINE_ASYNC, gRPC calls behind their connection's); or this body's bytes, counted as they arrive, would take the prediction bodies this process holds past MAX_BODY_BYTES_IN_FLIGHT (the rest of it unread, the connection closed)`,
  ),
} as const;

/**
 * Where a response schema lists the other media types its status is also sent in (a binary
 * answer beside the JSON one); openapi.ts puts them in the response's `content` beside JSON.
 */
export const OTHER_CONTENT_KEY = 'x-normserve-other-content';

/** The header of every prediction's answer (inference-reply.ts). */
export const MODEL_VERSION_HEADER = modelVersionHeaderDoc('The version that computed every row');

/**
 * A 2xx response sent as JSON (`schema`) or, when the request asks for it, as bytes of
 * `mediaType`: the response's description says when; `headers` are those the response carries.
 */
export function jsonOrBinary<T extends z.ZodType>(
  schema: T,
  binary: { mediaType: string; description: string },
  description: string,
  headers: Record<string, HeaderDoc>,
) {
  return schema.meta({
    description,
    headers,
    [OTHER_CONTENT_KEY]: {
      [binary.mediaType]: {
        schema: {
          type: 'string',
          contentMediaType: binary.mediaType,
          description: binary.description,
        },
      },
    },
  });
}
