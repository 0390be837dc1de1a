import { randomUUID } from 'node:crypto';

/**
 * Request ids and W3C traceparent, read the same way by both transports: HTTP headers
 * (http/tracing.ts) and gRPC metadata (grpc/call-recorder.ts).
 */

/**
 * A well-formed X-Request-Id — the only definition: 1 to 128 characters among letters, digits and
 * `.`, `_`, `:`, `-` (UUIDs, ULIDs, hex, and the ids of common proxies: Envoy, nginx
 * `$request_id`, Heroku). Anything else (empty, longer, spaces, quotes, non-ASCII, a repeated
 * header) is replaced by a new UUID, so a client cannot inject text into logs. One character
 * class with a bounded count: linear, no backtracking.
 */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** The same rule as a JSON Schema `pattern` (the OpenAPI document's X-Request-Id). */
export const REQUEST_ID_PATTERN = REQUEST_ID.source;

export const isWellFormedRequestId = (value: unknown): value is string =>
  typeof value === 'string' && REQUEST_ID.test(value);

/** The request id of a call: the client's id when well-formed, else a new UUID. */
export const requestIdFrom = (given: unknown): string =>
  isWellFormedRequestId(given) ? given : randomUUID();

/** The log field carrying the request id (Fastify's requestIdLogLabel). */
export const REQUEST_ID_LOG_FIELD = 'request_id';

export interface Traceparent {
  /** 32 lowercase hex digits, not all zero. */
  traceId: string;
  /** The caller's span id: 16 lowercase hex digits, not all zero. */
  parentId: string;
  /** trace-flags, 2 hex digits (bit 0: sampled). */
  flags: string;
}

const isLowerHex = (c: number): boolean => (c >= 48 && c <= 57) || (c >= 97 && c <= 102);

function lowerHexAt(s: string, start: number, length: number): boolean {
  for (let i = start; i < start + length; i++) if (!isLowerHex(s.charCodeAt(i))) return false;
  return true;
}

function allZero(s: string, start: number, length: number): boolean {
  for (let i = start; i < start + length; i++) if (s.charCodeAt(i) !== 48) return false;
  return true;
}

/**
 * Parses a `traceparent` header as W3C Trace Context Level 1 §3.2 says
 * (https://www.w3.org/TR/trace-context/#traceparent-header):
 * `version "-" trace-id "-" parent-id "-" trace-flags`, all lowercase hex, of 2, 32, 16 and 2
 * digits. Version `ff` is invalid; version `00` is exactly 55 characters; a higher version may
 * append fields after a `-` (§3.2.4: parse the first four, ignore the rest). An all-zero trace-id
 * or parent-id is invalid. Returns undefined for anything malformed: the header is then ignored,
 * as §3.2 asks of a receiver that cannot parse it. A character scan without regex or allocation
 * until the two ids are sliced out.
 */
export function parseTraceparent(header: unknown): Traceparent | undefined {
  if (typeof header !== 'string' || header.length < 55) return undefined;
  const s = header;
  if (!lowerHexAt(s, 0, 2) || (s.charCodeAt(0) === 102 && s.charCodeAt(1) === 102))
    return undefined;
  const version0 = s.charCodeAt(0) === 48 && s.charCodeAt(1) === 48;
  if (version0 ? s.length !== 55 : s.length > 55 && s.charCodeAt(55) !== 45) return undefined;
  if (s.charCodeAt(2) !== 45 || s.charCodeAt(35) !== 45 || s.charCodeAt(52) !== 45)
    return undefined;
  if (!lowerHexAt(s, 3, 32) || !lowerHexAt(s, 36, 16) || !lowerHexAt(s, 53, 2)) return undefined;
  if (allZero(s, 3, 32) || allZero(s, 36, 16)) return undefined;
  return { traceId: s.slice(3, 35), parentId: s.slice(36, 52), flags: s.slice(53, 55) };
}
