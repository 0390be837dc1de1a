import type { IncomingMessage } from 'node:http';
import { NormserveError } from '../errors/index.js';

/**
 * What HTTP/1.1 itself refuses in a request's head, as a problem document with the request id,
 * log line and metrics of every other refusal (the first onRequest hook), rather than Node's bare
 * answer or a route's misleading one:
 *
 * - no Host header on an HTTP/1.1 request, or more than one: "A server MUST respond with a 400
 *   (Bad Request) status code to any HTTP/1.1 request message that lacks a Host header field and
 *   to any request message that contains more than one Host header field line" (RFC 9112 §3.2).
 *   Node kept the first of several and said nothing; its own check for a missing one
 *   (requireHostHeader, turned off in httpServerOptions) answered a bodiless 400 with no
 *   Content-Type and no request id. HTTP/1.0 has no such rule and is served without one.
 * - two Content-Type lines: Node kept the first and dropped the other without a word, so a body
 *   could be read as a type another hop (a proxy that keeps the last) did not check it as.
 * - a fragment in the request target (`/v1/models/digits#x`): the target's grammar has none
 *   (RFC 9112 §3.2, origin-form = absolute-path [ "?" query ]; a fragment stays with the client,
 *   RFC 9110 §4.2.5). The router cut it and read `x` as a query parameter, unknown to the route.
 * - a transfer coding other than chunked (`Transfer-Encoding: gzip, chunked`): Node reads the
 *   chunks and leaves the gzip to the application, which read compressed bytes as the body ("not
 *   valid UTF-8"). RFC 9112 §6.1 suggests a 501 for a coding not understood; it is a 400 here,
 *   as no client input is answered with a 5xx (a 5xx is the server's fault, alerted on).
 *   Content-Encoding is how a body comes compressed here.
 * - the asterisk-form target `*` with a method other than OPTIONS (RFC 9112 §3.2.4: "only used
 *   for a server-wide OPTIONS request"): the router read it as `/` and answered the index page.
 */
export function malformedTarget(request: IncomingMessage): NormserveError | undefined {
  if (request.headers.host === undefined && request.httpVersion !== '1.0')
    return new NormserveError(
      'INVALID_INPUT',
      'the request has no Host header, which HTTP/1.1 requires (RFC 9112 §3.2)',
    );
  if (headerLines(request.rawHeaders, 'host') > 1)
    return new NormserveError(
      'INVALID_INPUT',
      'the request has more than one Host header; HTTP/1.1 allows one (RFC 9112 §3.2)',
    );
  if (headerLines(request.rawHeaders, 'content-type') > 1)
    return new NormserveError(
      'INVALID_INPUT',
      'the request has more than one Content-Type header; a body has one type (RFC 9110 §8.3)',
    );
  const codings = transferCodings(request.headers['transfer-encoding']);
  if (codings.some((coding) => coding !== 'chunked'))
    return new NormserveError(
      'INVALID_INPUT',
      `Transfer-Encoding ${JSON.stringify(request.headers['transfer-encoding'])} is not supported: only chunked is (RFC 9112 §6.1); send a compressed body with Content-Encoding instead`,
    );
  if (request.url === '*' && request.method !== 'OPTIONS')
    return new NormserveError(
      'INVALID_INPUT',
      `the request target '*' is for OPTIONS only (RFC 9112 §3.2.4); ${request.method} takes a path`,
    );
  if (request.url?.includes('#'))
    return new NormserveError(
      'INVALID_INPUT',
      "the request target has a fragment ('#…'): a client sends the path and query only (RFC 9112 §3.2)",
    );
  return undefined;
}

/** The codings of a Transfer-Encoding header, lower case ([] without one). */
function transferCodings(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '');
}

/** How many of a request's header lines are `name` (rawHeaders: name, value, name, value, …). */
function headerLines(rawHeaders: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) n++;
  return n;
}
