import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RoutePatterns } from './route-patterns.js';

/**
 * The serving protocols whose REST routes normserve speaks: TF Serving's (status, metadata,
 * predict under /v1/models) and the Open Inference Protocol v2's (every route under /v2). A route
 * declares its protocol where it is registered (`config: { protocol }`).
 */
export type ServingProtocol = 'tf-serving' | 'open-inference';

declare module 'fastify' {
  interface FastifyContextConfig {
    protocol?: ServingProtocol;
  }
  interface FastifyInstance {
    /** Every route's URL pattern (app.ts), asked of a request no route took. */
    routePatterns: RoutePatterns;
  }
}

/** The media type of normserve's own routes' errors (RFC 9457 §3). */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';
const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/**
 * The media type of a protocol route's errors: exactly `application/json`, with no parameter.
 * TF Serving and Triton answer errors as application/json `{"error": "..."}`, and KServe's
 * InferenceRESTClient reads the message only when the Content-Type header equals
 * "application/json" as a whole string (kserve inference_client.py, _construct_http_status_error);
 * JSON is UTF-8 by definition (RFC 8259 §8.1), so a charset would say nothing but hide the message.
 */
export const PROTOCOL_ERROR_CONTENT_TYPE = 'application/json';

/**
 * The paths of a request no route matched (404, 405, router errors) that belong to a protocol:
 * a client of TF Serving or of the Open Inference Protocol that calls a wrong path or method reads
 * the message as it reads its routes' errors. Where routes have the path's shape, they decide
 * instead (route-patterns.ts): `PUT /v1/models/digits:recalibrate` is normserve's own.
 */
const PROTOCOL_PATH = /^\/v1\/models(?:[/:?]|$)|^\/v2(?:[/?]|$)/;

/** Whether the Accept header names application/problem+json (with a q other than 0). */
function acceptsProblem(accept: string | undefined): boolean {
  if (accept === undefined || !accept.toLowerCase().includes(PROBLEM_MEDIA_TYPE)) return false;
  return accept.split(',').some((range) => {
    const [type, ...params] = range.split(';');
    if (type!.trim().toLowerCase() !== PROBLEM_MEDIA_TYPE) return false;
    const q = params.find((p) => /^\s*q\s*=/i.test(p));
    return q === undefined || Number(q.split('=')[1]) > 0;
  });
}

/**
 * Whether a request's errors answer in its protocol's media type: a route that declares a
 * protocol, or, for a request no route matched, the routes of its path's shape, or else a path
 * under /v1/models or /v2.
 */
export function speaksProtocol(request: FastifyRequest): boolean {
  if (!request.is404) return request.routeOptions.config.protocol !== undefined;
  // Asked only of an error, never on a route's way: a request no route took has its body parsed
  // (and refused: 415, 413) before the not-found handler runs, so nothing earlier could tell.
  const path = request.url.split('?')[0]!;
  return request.server.routePatterns.speaksProtocolAt(path) ?? PROTOCOL_PATH.test(path);
}

/**
 * The one rule of an error's Content-Type (the body is the same problem document either way):
 * `application/json` for the protocol routes, whose clients read errors as TF Serving's and
 * Triton's, unless the request's Accept names application/problem+json; problem+json for
 * normserve's own routes. The protocol routes' answer varies with Accept, and says so.
 */
export function problemContentType(request: FastifyRequest, reply: FastifyReply): string {
  const { type, variesWithAccept } = problemMediaType(request);
  if (!variesWithAccept) return type;
  const vary = reply.getHeader('vary');
  if (vary === undefined) void reply.header('Vary', 'Accept');
  else if (!/(^|,)\s*(accept|\*)\s*(,|$)/i.test(String(vary)))
    void reply.header('Vary', `${String(vary)}, Accept`);
  return type;
}

/**
 * problemContentType's rule without a reply to set Vary on: for a problem written straight to
 * the socket (connection-limits.ts), which writes `Vary: Accept` itself when the type varies.
 */
export function problemMediaType(request: FastifyRequest): {
  type: string;
  variesWithAccept: boolean;
} {
  if (!speaksProtocol(request)) return { type: PROBLEM_CONTENT_TYPE, variesWithAccept: false };
  return {
    type: acceptsProblem(request.headers.accept)
      ? PROBLEM_CONTENT_TYPE
      : PROTOCOL_ERROR_CONTENT_TYPE,
    variesWithAccept: true,
  };
}

/** The media types the OpenAPI document lists for a route's problem documents. */
export const problemMediaTypes = (protocol: ServingProtocol | undefined): readonly string[] =>
  protocol === undefined ? [PROBLEM_MEDIA_TYPE] : [PROTOCOL_ERROR_CONTENT_TYPE, PROBLEM_MEDIA_TYPE];
