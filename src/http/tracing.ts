import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify';
import { parseTraceparent, requestIdFrom, type TraceContext } from '../service/index.js';

export {
  isWellFormedRequestId,
  parseTraceparent,
  REQUEST_ID_LOG_FIELD,
  type Traceparent,
} from '../service/index.js';

/**
 * Request ids and W3C Trace Context, so that one request can be followed from a proxy's log to
 * the worker's log line, its problem document and the recalibration job it started. The id is in
 * the `X-Request-Id` response header, the `request_id` field of every log line of the request and
 * of problem documents, and the job record; a traceparent's ids are in the log lines and the job.
 */

/** Fastify's genReqId: the client's X-Request-Id when well-formed, else a new UUID. */
export function requestIdOf(req: IncomingMessage): string {
  return requestIdFrom(req.headers['x-request-id']);
}

/**
 * The request's id as its response's X-Request-Id: app.ts's onSend hook, and its frameworkErrors
 * (a malformed URL or an over-long path parameter), whose request Fastify builds with no route
 * context, so that no onRequest or onSend hook runs for it (fastify.js onBadUrl, onMaxParamLength).
 */
export function sendRequestId(request: FastifyRequest, reply: FastifyReply): void {
  void reply.header('X-Request-Id', request.id);
}

/**
 * Fastify's childLoggerFactory: the request's logger binds the request id (Fastify passes it in
 * `bindings`) and, when the request carries a valid traceparent, `trace_id` and `parent_id`, so
 * every line the request logs (its "request" line, errors) can be joined with the caller's trace.
 */
export function childLoggerWithTrace(
  this: unknown,
  logger: FastifyBaseLogger,
  bindings: Record<string, unknown>,
  options: object,
  req: IncomingMessage,
): FastifyBaseLogger {
  const header = req.headers.traceparent;
  if (header !== undefined) {
    const trace = parseTraceparent(header);
    if (trace) {
      bindings.trace_id = trace.traceId;
      bindings.parent_id = trace.parentId;
    }
  }
  return logger.child(bindings, options);
}

/** The request id and trace of a request, for the job it starts. */
export function traceContextOf(request: FastifyRequest): TraceContext {
  const trace = parseTraceparent(request.headers.traceparent);
  return trace
    ? { request_id: request.id, trace_id: trace.traceId, parent_id: trace.parentId }
    : { request_id: request.id };
}
