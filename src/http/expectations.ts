import type { IncomingMessage, Server } from 'node:http';
import { NormserveError, quote } from '../errors/index.js';

/** Requests whose `Expect` asks for something other than 100-continue. */
const unmet = new WeakSet<IncomingMessage>();

/**
 * `Expect` other than `100-continue` (RFC 9110 §10.1.1): Node answers such a request itself with
 * a bare 417, no body and no request id, before any route sees it. It is handed to Fastify like
 * any request instead, and refused there (unmetExpectation, in the first onRequest hook) as a 417
 * problem document with the request id, log line and metrics of every other refusal.
 */
export function routeUnmetExpectations(server: Server): void {
  server.on('checkExpectation', (request: IncomingMessage, response) => {
    unmet.add(request);
    server.emit('request', request, response);
  });
}

/** The error for a request routeUnmetExpectations handed on, else undefined. */
export function unmetExpectation(request: IncomingMessage): NormserveError | undefined {
  if (!unmet.has(request)) return undefined;
  return new NormserveError(
    'EXPECTATION_FAILED',
    `Expect: ${quote(String(request.headers.expect))} cannot be met; the only expectation served is 100-continue`,
  );
}
