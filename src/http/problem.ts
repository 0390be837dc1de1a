import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  type ErrorCode,
  type ErrorLocation,
  errorCatalogue,
  isNormserveError,
  NormserveError,
} from '../errors/index.js';
import { acceptedTypes } from './accepted-types.js';
import { bodyTooLarge } from './body-too-large.js';
import { emptyJsonBody } from './json-body.js';
import { noContentType } from './media-type.js';
import { noRoute } from './no-route.js';
import { PROBLEM_CONTENT_TYPE, problemContentType } from './problem-media-type.js';
import { LIMITS } from './schemas/limits.js';

/** RFC 9457 problem details, plus `error` (the message string TF Serving and OIP clients read). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  /** The request's path and query; absent when no request line was read (see connection-limits.ts). */
  instance?: string;
  code: ErrorCode;
  error: string;
  errors?: ErrorLocation[];
  /** The request's id (also its X-Request-Id header and its log lines' `request_id`). */
  request_id?: string;
  [extra: string]: unknown;
}

/** `INVALID_INPUT` → `urn:normserve:problem:invalid-input` (documented in docs/errors.md). */
export const problemType = (code: ErrorCode): string =>
  `urn:normserve:problem:${code.toLowerCase().replaceAll('_', '-')}`;

export function toProblem(error: NormserveError, instance: string | undefined): Problem {
  const { status, title } = errorCatalogue[error.code];
  return {
    ...error.extra,
    type: problemType(error.code),
    title,
    status,
    detail: error.message,
    ...(instance === undefined ? {} : { instance }),
    code: error.code,
    error: error.message,
    // Bounded whatever raised it: a problem never grows with the number of bad values.
    ...(error.errors.length > 0 ? { errors: error.errors.slice(0, LIMITS.errorLocations) } : {}),
  };
}

const MALFORMED_JSON =
  'malformed JSON: the body is not valid JSON, or has a "__proto__" or "constructor.prototype" key (refused)';

/** Fastify's own errors (body parsing, limits, media types) as catalogue errors. */
function fromFastifyError(error: FastifyError, request: FastifyRequest): NormserveError {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return bodyTooLarge('request body', {
        name: 'BODY_LIMIT_BYTES',
        bytes: request.routeOptions.bodyLimit,
      });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new NormserveError(
        'UNSUPPORTED_MEDIA_TYPE',
        `${noContentType(request.headers['content-type']) ? 'no Content-Type' : 'unsupported Content-Type'}; this route accepts ${acceptedTypes(request).join(', ')}`,
      );
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new NormserveError('INVALID_INPUT', 'Content-Length does not match the body');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new NormserveError('INVALID_JSON', emptyJsonBody());
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // Fastify's JSON parser reports syntax errors and secure-json-parse's refusals alike, with
      // a message naming application/json even for curl's form type: name both causes instead.
      return new NormserveError('INVALID_JSON', MALFORMED_JSON);
    case 'FST_ERR_CTP_INVALID_TYPE':
      return new NormserveError('UNSUPPORTED_MEDIA_TYPE', 'invalid Content-Type header');
    // Router errors; they reach this handler when app.ts passes frameworkErrors to it.
    case 'FST_ERR_BAD_URL':
      return new NormserveError('INVALID_INPUT', 'the URL has a malformed percent-encoding');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new NormserveError('INVALID_INPUT', 'a path parameter of the URL is too long');
    default:
      break;
  }
  if (error.statusCode === 429) return new NormserveError('RATE_LIMITED', error.message);
  // Only the static files of /docs answer 403 (a path out of their directory): no INVALID_INPUT
  // "Forbidden", and no 403 telling a probe it found something; the 404 of a missing file.
  if (error.statusCode === 403) return noRoute(request);
  // …nor its bare 400 "Bad Request" for a path holding a NUL byte (`send` refuses %00): the 404
  // the dashboard's files answer for the same path (h247).
  if (error.statusCode === 400 && request.routeOptions.url?.startsWith('/docs/')) {
    return noRoute(request);
  }
  if (error instanceof SyntaxError) return new NormserveError('INVALID_JSON', MALFORMED_JSON);
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return new NormserveError(
      error.statusCode === 404 ? 'NOT_FOUND' : 'INVALID_INPUT',
      error.message,
    );
  }
  return new NormserveError('INTERNAL', 'internal server error', { cause: error });
}

const asWritten = (payload: unknown): string => payload as string;

export function sendProblem(
  reply: FastifyReply,
  request: FastifyRequest,
  error: NormserveError,
): FastifyReply {
  const problem: Problem = { ...toProblem(error, request.url), request_id: request.id };
  // The request line names the problem's code (request-log.ts). A request answered with a problem
  // is no answered inference, even when its rows were computed (a fault after the engine
  // answered): its line is the problem's, and the inference metrics do not observe it.
  request.problemCode = error.code;
  if (request.inference !== undefined) {
    request.servedVersion ??= request.inference.version;
    request.inference = undefined;
  }
  if (error.code === 'UNAUTHORIZED')
    void reply.header('WWW-Authenticate', 'Bearer realm="normserve"');
  if (error.retryAfterSeconds !== undefined)
    void reply.header('Retry-After', String(error.retryAfterSeconds));
  const type = problemContentType(request, reply);
  void reply.code(problem.status).type(type);
  if (type === PROBLEM_CONTENT_TYPE) return reply.send(problem);
  // Fastify adds `; charset=utf-8` to a JSON type without one as it sends, except a payload its
  // serializer of the reply has written: the body is serialised here as send would (the route's
  // schema for the status) and handed on as written, so that the header stays the exact string.
  const body = reply.serialize(problem);
  return reply.serializer(asWritten).send(body);
}

/**
 * Whether a problem is a fault of the server: a 500, "an unexpected condition that prevented it
 * from fulfilling the request" (RFC 9110 §15.6.1), logged at error with its stack. The other 5xx
 * are states the answer itself reports — no version of the model to serve, storage that cannot be
 * written, a server shutting down or overloaded (503, §15.6.4; 507) — and 4xx are the client's: a
 * stack says nothing of either, and an error line per request floods the error log while a state
 * lasts (an unavailable model: every request to it).
 */
export const isServerFault = (error: NormserveError): boolean => error.status === 500;

/**
 * The level of the request line (request-log.ts's onResponse hook) of a request answered with this problem:
 * `warn` for a 5xx, a state of the server an operator should see without searching info lines
 * (Fastify would log it at error, with a stack); `info` for a 4xx, as Fastify logs them, and for
 * SHUTTING_DOWN, the drain's planned answer, which would otherwise mark every deploy.
 */
export const problemLogLevel = (error: NormserveError): 'info' | 'warn' =>
  error.status >= 500 && error.code !== 'SHUTTING_DOWN' ? 'warn' : 'info';

/**
 * The app's error handler: every error leaves as a problem document (in the media type of
 * problem-media-type.ts); faults (isServerFault) are logged at error with their stack, each
 * request once more by its request line (problemLogLevel).
 */
export function errorHandler(
  error: FastifyError | Error,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const normserveError = logIfFault(error, request);
  request.lineLevel = problemLogLevel(normserveError);
  return sendProblem(reply, request, normserveError);
}

/**
 * `error` as the problem it is, logged at error with its stack when it is a fault
 * (isServerFault). Also for an error raised while the body of a request no route serves is read,
 * which is answered with its 404 or 405 all the same (app.ts): the fault must not go unseen.
 */
export function logIfFault(error: FastifyError | Error, request: FastifyRequest): NormserveError {
  const normserveError = isNormserveError(error)
    ? error
    : fromFastifyError(error as FastifyError, request);
  if (isServerFault(normserveError)) request.log.error({ err: error }, 'request failed');
  return normserveError;
}
