import { Metadata, type StatusObject, status } from '@grpc/grpc-js';
import { type ErrorCode, errorCatalogue, type NormserveError } from '../errors/index.js';

/**
 * The gRPC status of a catalogue error, from its HTTP status (the mapping of
 * https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.txt read backwards, plus
 * the obvious ones): client mistakes stay client-side codes (INVALID_ARGUMENT, NOT_FOUND, …),
 * never INTERNAL or UNKNOWN.
 */
export function grpcStatusOf(code: ErrorCode): status {
  const http: number = errorCatalogue[code].status;
  switch (http) {
    case 400:
    case 413: // Triton answers a too large batch with INVALID_ARGUMENT too
    case 415:
    case 422:
      return status.INVALID_ARGUMENT;
    case 401:
      return status.UNAUTHENTICATED;
    case 403:
      return status.PERMISSION_DENIED;
    // REQUEST_TIMEOUT: the request did not arrive in time. grpc-js and grpc-go end a call whose
    // deadline passed with DEADLINE_EXCEEDED, and the status codes' definition is "the deadline
    // expired before the operation could complete" (grpc/doc/statuscodes.md).
    case 408:
      return status.DEADLINE_EXCEEDED;
    case 404:
      return status.NOT_FOUND;
    case 409:
      return status.ABORTED;
    case 429:
      return status.RESOURCE_EXHAUSTED;
    case 499: // CLIENT_ABORTED, nginx's "client closed request": the mapping's CANCELLED
      return status.CANCELLED;
    case 503:
      return status.UNAVAILABLE;
    case 504:
      return status.DEADLINE_EXCEEDED;
    default:
      return http >= 400 && http < 500 ? status.FAILED_PRECONDITION : status.INTERNAL;
  }
}

/**
 * The longest status message sent: it travels in an HTTP/2 trailer, and one of hundreds of
 * kilobytes (a 100,000-character model name echoed) stalled the connection it was sent on, other
 * calls included, instead of reaching the client. Requests are held to the HTTP routes' limits
 * (messages.ts); this bounds whatever a message may still quote.
 */
const MAX_STATUS_MESSAGE_CHARS = 1024;

/**
 * A status message as sent: at most MAX_STATUS_MESSAGE_CHARS, and well-formed UTF-16 — grpc-js
 * percent-encodes it with encodeURI, which throws URIError on a lone surrogate: half of a
 * client's emoji cut by a message's slice crashed the process from a compute lane's turn, and
 * made a synchronous handler's answer UNKNOWN (gRPC attacker review of 2026-12-06). A lone
 * surrogate becomes U+FFFD, and the cut never splits a pair.
 */
export function statusMessage(message: string): string {
  const whole = message.replace(LONE_SURROGATE, '\uFFFD');
  if (whole.length <= MAX_STATUS_MESSAGE_CHARS) return whole;
  const cut = whole.slice(0, MAX_STATUS_MESSAGE_CHARS - 1);
  return `${isHighSurrogate(cut.charCodeAt(cut.length - 1)) ? cut.slice(0, -1) : cut}…`;
}

const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;

/** A surrogate that is not half of a pair (String.prototype.toWellFormed's, ES2024). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * The status a catalogue error ends a call with: its gRPC code, its message (bounded), and the
 * catalogue code in the `normserve-code` trailer. HTTP's Retry-After (OVERLOADED,
 * MODEL_UNAVAILABLE, SHUTTING_DOWN) goes as gRPC's retry pushback: a client with a retry policy
 * for the status waits that long before its next attempt (gRFC A6).
 */
export function errorStatus(error: NormserveError): StatusObject {
  const metadata = new Metadata();
  metadata.set('normserve-code', error.code);
  if (error.retryAfterSeconds !== undefined)
    metadata.set('grpc-retry-pushback-ms', String(error.retryAfterSeconds * 1000));
  return { code: grpcStatusOf(error.code), details: statusMessage(error.message), metadata };
}
