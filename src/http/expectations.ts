import type { IncomingMessage, Server } from 'node:http';
import type { FastifyRequest, preParsingHookHandler, RouteOptions } from 'fastify';
import { NormserveError, quote } from '../errors/index.js';
import { preParsingOf } from './route-pre-parsing.js';
import { readAsStream } from './streamed-body.js';

/** Requests whose `Expect` asks for something other than 100-continue. */
const unmet = new WeakSet<IncomingMessage>();
/** Requests with `Expect: 100-continue` that have not been told to send their body yet. */
const awaitingContinue = new WeakSet<IncomingMessage>();

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
  // 100-continue: Node would answer `100 Continue` at once, inviting a body the route may refuse
  // unread (a 401 without a token, a 404 model). The go-ahead is sent when the route is about to
  // read the body instead (continueBeforeBody), once its guards have passed; a request refused
  // before that gets its answer in place of the 100, and its client sends no body.
  server.on('checkContinue', (request: IncomingMessage, response) => {
    awaitingContinue.add(request);
    server.emit('request', request, response);
  });
}

/**
 * The last preParsing hook of a route (and the not-found handler's: continueNotFound): the 100
 * Continue of a request that waits for it, unless its body is to be refused by its declared
 * length before it is read (Fastify's 413 for a Content-Length over the route's limit).
 */
const sendContinue: preParsingHookHandler = (request, reply, payload, done) => {
  if (awaitingContinue.delete(request.raw) && !reply.raw.headersSent && !refusedUnread(request))
    reply.raw.writeContinue();
  done(null, payload);
};

/**
 * A body Fastify refuses by its Content-Length before reading it: over the route's bodyLimit. A
 * body read as a stream is held to its own limit (a recalibration upload that declares more is
 * refused by its route's preParsing hook, before this one runs), an encoded one once decoded.
 */
function refusedUnread(request: FastifyRequest): boolean {
  if (readAsStream(request) || request.headers['content-encoding'] !== undefined) return false;
  const length = Number(request.headers['content-length']);
  return Number.isFinite(length) && length > request.routeOptions.bodyLimit;
}

/**
 * An app-level preParsing hook: the not-found handler (a 404, a 405 for another method) runs no
 * route's hooks, and would otherwise read a JSON body that its client holds back for a 100 that
 * never comes, until REQUEST_TIMEOUT_MS cut it.
 */
export const continueNotFound: preParsingHookHandler = function (request, reply, payload, done) {
  if (request.is404) return sendContinue.call(this, request, reply, payload, done);
  done(null, payload);
};

/**
 * An onRoute hook, added after every other (the access guards among them): appends sendContinue
 * to the route's preParsing hooks, so it runs after every check made before a body is read.
 */
export function continueBeforeBody(route: RouteOptions): void {
  route.preParsing = [...preParsingOf(route), sendContinue];
}

/** The error for a request routeUnmetExpectations handed on, else undefined. */
export function unmetExpectation(request: IncomingMessage): NormserveError | undefined {
  if (!unmet.has(request)) return undefined;
  return new NormserveError(
    'EXPECTATION_FAILED',
    `Expect: ${quote(String(request.headers.expect))} cannot be met; the only expectation served is 100-continue`,
  );
}
