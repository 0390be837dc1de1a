import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import { NormserveError, requestNotArrived } from '../errors/index.js';
import type { ServerConfig } from '../service/index.js';
import { REQUEST_DISCARDED } from './callers.js';
import { replyOf } from './client-gone.js';
import type { ServiceMetrics } from './metrics.js';
import { toProblem } from './problem.js';
import { PROBLEM_CONTENT_TYPE, problemMediaType } from './problem-media-type.js';
import { REQUEST_ID_LOG_FIELD } from './tracing.js';

/** Node's default time to receive the headers of a request. */
const HEADERS_TIMEOUT_MS = 60_000;
/** Node's default period of its timeout sweep. */
const CHECK_INTERVAL_MS = 30_000;

/**
 * Node's request timeouts (`http.createServer` options), from REQUEST_TIMEOUT_MS: the whole
 * request, headers and body, must arrive within it. Node needs all three set together: it swaps
 * headersTimeout and requestTimeout when the first is the larger (so a 10 s request timeout with
 * the default 60 s headers timeout gave bodies 60 s), and it only looks every
 * connectionsCheckingInterval (30 s by default): the sweep here runs four times per timeout, so a
 * request is cut at most 25 % late.
 */
export function httpServerOptions(config: ServerConfig) {
  const requestTimeout = config.REQUEST_TIMEOUT_MS;
  return {
    // An HTTP/1.1 request without Host is refused by the first onRequest hook, as a problem
    // document (request-target.ts), not by Node's bare 400.
    requireHostHeader: false,
    requestTimeout,
    headersTimeout:
      requestTimeout > 0 ? Math.min(HEADERS_TIMEOUT_MS, requestTimeout) : HEADERS_TIMEOUT_MS,
    connectionsCheckingInterval: Math.max(
      100,
      Math.min(CHECK_INTERVAL_MS, Math.floor((requestTimeout || HEADERS_TIMEOUT_MS) / 4)),
    ),
  };
}

/**
 * Writes a problem document straight to a socket whose request never reached a route, with its
 * request id in `X-Request-Id` and `request_id` as on every other answer. Its media type is the
 * one rule's (problem-media-type.ts) when the request reached Fastify (a body cut by the
 * timeout: its route is known); else problem+json. A request whose headers never ended (431, a
 * 408 of headers, malformed HTTP) has no URL to apply the rule to: Node's parser keeps none, and
 * the error's rawPacket is only the chunk it failed in, which holds the request line only when
 * the headers came in one read.
 */
function writeProblem(
  socket: Socket,
  error: NormserveError,
  url: string | undefined,
  request: FastifyRequest | undefined,
  requestId: string,
): void {
  const { type, variesWithAccept } = request
    ? problemMediaType(request)
    : { type: PROBLEM_CONTENT_TYPE, variesWithAccept: false };
  const body = JSON.stringify({ ...toProblem(error, url), request_id: requestId });
  socket.write(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\n` +
      `Content-Type: ${type}\r\n${variesWithAccept ? 'Vary: Accept\r\n' : ''}Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The log line of a request cut at REQUEST_TIMEOUT_MS, here and when a route was reading it. */
export const RECEIVE_TIMED_OUT = 'request timed out while being received';

/** Connections whose request Node cut at REQUEST_TIMEOUT_MS (see requestTimedOut). */
const timedOutSockets = new WeakSet<Socket>();

/**
 * Whether the request on `socket` was cut because it did not arrive within REQUEST_TIMEOUT_MS: a
 * route still reading its body sees only the connection closing (ECONNRESET), as if the client
 * had gone, and would record a timed-out upload as CLIENT_ABORTED.
 */
export const requestTimedOut = (socket: Socket): boolean => timedOutSockets.has(socket);

/**
 * Errors Node's HTTP parser raises before a request reaches Fastify (a request that did not
 * arrive in time, headers too large, malformed HTTP): answered as problem documents like
 * everything else, then the connection is closed.
 */
export function clientErrorHandler(log: FastifyBaseLogger, metrics: ServiceMetrics) {
  const onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed || closingAfterAnswers.has(socket)) return;
    if (err.code === 'HPE_CLOSED_CONNECTION') {
      // Bytes after a request whose client asked to close the connection (`Connection: close`,
      // HTTP/1.0 without keep-alive): RFC 9112 §9.6 has the client send no more and the server
      // process none. Not malformed, and nothing is sent (Node closes the connection after that
      // request's answer): a line as for a request behind the server's own close, no count.
      log.info({ cause: err.code }, REQUEST_DISCARDED);
      closingAfterAnswers.add(socket);
      socket.pause();
      afterAnswers(socket, () => socket.destroy());
      return;
    }
    let error: NormserveError;
    let message: string;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      timedOutSockets.add(socket);
      if (routeAnswersTimeout(socket, () => onClientError(err, socket))) return;
      error = requestNotArrived();
      message = RECEIVE_TIMED_OUT;
    } else if (err.code === 'HPE_HEADER_OVERFLOW') {
      error = new NormserveError('HEADERS_TOO_LARGE', 'the request headers are too large');
      message = 'request headers too large';
    } else {
      error = new NormserveError('INVALID_INPUT', 'malformed HTTP request');
      message = 'malformed HTTP request';
    }
    // As Node's own handler: only when no response has begun on this connection.
    // (A body cut by the timeout has its request, and so its URL; headers that never ended have none.)
    const pending = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    // The oldest unanswered response's request, when it is the one that failed. One received
    // whole is an earlier request of the connection (pipelined: the failure is in one behind it,
    // in the same packet or not): it is answered first, as RFC 9112 §9.3.2 orders responses,
    // and the failure is no part of it (not its URL, id, line or count).
    const earlier = pending?.req?.complete === true;
    const response = earlier ? undefined : pending;
    // The id Fastify gave the request when it got that far (its reply is linked to the
    // response), else a new one, so the answer and its log line can still be joined.
    const reply = response && replyOf(response);
    const requestId = reply?.request.id ?? randomUUID();
    // A request that reached Fastify gets its line from the onRequestAbort hook (app.ts), with its
    // route and status; one that did not is logged here.
    // Counted too (review59: a 400 or 431 of the parser was in no series); the timeout's 408
    // of a request that never arrived whole is too.
    if (!response?.req) {
      // `code` is the catalogue's, as on every problem's line (the answer's); Node's is `cause`.
      log.info(
        {
          code: error.code,
          cause: err.code,
          status: error.status,
          [REQUEST_ID_LOG_FIELD]: requestId,
        },
        message,
      );
      metrics.countUnparsedRequest(error.status);
    }
    if (earlier) {
      closingAfterAnswers.add(socket);
      // What follows the failure on this connection is not read (it cannot be parsed).
      socket.pause();
      afterAnswers(socket, () => {
        if (socket.writable) writeProblem(socket, error, undefined, undefined, requestId);
        socket.destroy(err);
      });
      return;
    }
    if (socket.writable && !response?.headersSent)
      writeProblem(socket, error, response?.req?.url, reply?.request, requestId);
    socket.destroy(err);
  };
  return onClientError;
}

/** Connections whose parser failed behind requests still being answered (afterAnswers). */
const closingAfterAnswers = new WeakSet<Socket>();

/**
 * Runs `then` once every response queued on `socket` is finished (Node hands the next pipelined
 * response the socket when one finishes) or the connection is gone.
 */
function afterAnswers(socket: Socket, then: () => void): void {
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (!pending || socket.destroyed) {
    then();
    return;
  }
  // After Node's own 'finish' listener (resOnFinish), which assigns the next response.
  pending.once('close', () => setImmediate(() => afterAnswers(socket, then)));
}

/**
 * How long a route that answers its own upload's timeout (onReceiveTimeout) has to answer before
 * the 408 is written for it and the connection closed, as for any other request.
 */
export const ROUTE_TIMEOUT_ANSWER_MS = 5_000;

/**
 * A request cut at REQUEST_TIMEOUT_MS whose route answers the cut itself: its onReceiveTimeout is
 * called and the connection left open for its answer; `fallback` (the 408 written here) runs if
 * none was sent within ROUTE_TIMEOUT_ANSWER_MS. False for every other request.
 */
function routeAnswersTimeout(socket: Socket, fallback: () => void): boolean {
  const response = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  const reply = response && replyOf(response);
  const onTimeout = reply?.request.onReceiveTimeout;
  // The oldest unanswered response's request: only when it is the one still arriving (a
  // pipelined request behind a whole upload is cut as any other).
  if (!response || !reply || response.headersSent || response.req.complete) return false;
  if (onTimeout === undefined) return false;
  reply.request.onReceiveTimeout = undefined;
  const timer = setTimeout(() => {
    if (!response.headersSent && !socket.destroyed) fallback();
  }, ROUTE_TIMEOUT_ANSWER_MS);
  timer.unref();
  response.once('close', () => clearTimeout(timer));
  onTimeout();
  return true;
}

/**
 * CONNECT (a proxy's tunnel: RFC 9110 §9.3.6) is answered with a 400 problem, logged and counted
 * as the parser's refusals are; Node hands such a request to 'connect' listeners only and, with
 * none, closed the connection without a byte, a line or a count. nginx, not a proxy either,
 * answers it 400 too.
 */
export function refuseConnect(
  server: Server,
  log: FastifyBaseLogger,
  metrics: ServiceMetrics,
): void {
  server.on('connect', (_request: IncomingMessage, socket: Socket) => {
    const error = new NormserveError(
      'INVALID_INPUT',
      'CONNECT is not served: normserve is not a proxy',
    );
    const requestId = randomUUID();
    log.info(
      {
        method: 'CONNECT',
        status: error.status,
        code: error.code,
        [REQUEST_ID_LOG_FIELD]: requestId,
      },
      'CONNECT refused',
    );
    metrics.countUnparsedRequest(error.status);
    socket.on('error', () => undefined);
    if (socket.writable) writeProblem(socket, error, undefined, undefined, requestId);
    // Closed once written, whatever the client does: no HTTP timeout reaches a socket handed to
    // 'connect', and a client that kept its side open would hold a connection, and a drain, on.
    socket.destroySoon();
  });
}

/**
 * At most MAX_CONNECTIONS open connections per process: Node closes the ones above it as they
 * arrive ('drop'), counted in normserve_connections_dropped_total.
 */
export function limitConnections(server: Server, max: number, metrics: ServiceMetrics): void {
  server.maxConnections = max;
  server.on('drop', () => metrics.connectionsDropped.inc());
}
