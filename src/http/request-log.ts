/**
 * The request log and the request metrics: one log line per request (at its `lineLevel`), with the
 * inference it ran when it ran one, and the request's series in the metrics; a request that got
 * no response sent whole is recorded once by `recordUnanswered`: as 499 when its client left (or
 * 408 when the server cut it at REQUEST_TIMEOUT_MS), as discarded when it came behind a response
 * that closed its connection.
 */
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { type ErrorCode, errorCatalogue } from '../errors/index.js';
import { behindConnectionEnd, REQUEST_DISCARDED } from './callers.js';
import { RECEIVE_TIMED_OUT, requestTimedOut } from './connection-limits.js';
import { requestLoggedUrl } from './logged-url.js';
import type { ServiceMetrics } from './metrics.js';
import { openApiPath } from './openapi.js';

const routeLabels = new Map<string, string>();
/** `/v1/models/:name(^…)::predict` → `/v1/models/{name}:predict`, for logs and metric labels. */
function routeLabel(pattern: string): string {
  let label = routeLabels.get(pattern);
  if (label === undefined) {
    label = openApiPath(pattern);
    routeLabels.set(pattern, label);
  }
  return label;
}

export interface RequestLog {
  /** The onResponse hook: the request's log line and metrics (none for one recorded as gone). */
  onResponse(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void;
  /**
   * A client that goes before its response was sent whole gets none, and Fastify calls no
   * onResponse for it: recorded once as nginx's 499 (CLIENT_ABORTED), at info, never as a server
   * error nor with the status it would have had. Before its request arrived whole (Fastify's
   * onRequestAbort), or after (trackCallers: its response closed unfinished — it may have been
   * waiting for a batch, which it leaves, or computing, which finishes unsent). A request the
   * server cut at REQUEST_TIMEOUT_MS also ends here: it got its 408 and is recorded as one.
   * A request received behind one whose response closed the connection (callers.ts,
   * behindConnectionEnd) was never to be answered (RFC 9112 §9.6): recorded once, at info, as
   * discarded, with no status (none was sent) and in no request series — not as its client's
   * abort (the attacker of 2026-12-04 saw those recorded as 499).
   */
  recordUnanswered(request: FastifyRequest): void;
}

/** The request log of an app, counting into its metrics. */
export function requestLog(metrics: ServiceMetrics): RequestLog {
  const onResponse = (
    request: FastifyRequest,
    reply: FastifyReply,
    done: HookHandlerDoneFunction,
  ): void => {
    // Recorded already, when it got no response (recordUnanswered).
    if (request.unanswered) {
      done();
      return;
    }
    // routeOptions is a getter that builds an object: read once. A 405 is labelled with the route
    // at its path (not-found.ts), read only when no route took the request.
    const url = request.routeOptions.url || request.allowedRoute;
    const route = url ? routeLabel(url) : 'unmatched';
    const inference = request.inference;
    // Read once: each read of elapsedTime takes the clock again.
    const elapsedMs = reply.elapsedTime;
    const durationMs = Math.round(elapsedMs * 1000) / 1000;
    const seconds = elapsedMs / 1000;
    const servedVersion = inference?.version ?? request.servedVersion;
    const version = servedVersion === undefined ? '' : String(servedVersion);
    metrics.observeRequest(
      request.method,
      route,
      String(reply.statusCode),
      inference?.model ?? request.modelName ?? '',
      version,
      seconds,
    );
    if (inference) {
      metrics.observeInference(inference, version);
      request.log[request.lineLevel](
        {
          method: request.method,
          url: requestLoggedUrl(request),
          route,
          status: reply.statusCode,
          durationMs,
          model: inference.model,
          version: inference.version,
          rows: inference.rows,
          computeMs: Math.round(inference.computeMs * 1000) / 1000,
          ...(inference.batchRows !== inference.rows || inference.queueMs > 0
            ? {
                batchRows: inference.batchRows,
                queueMs: Math.round(inference.queueMs * 1000) / 1000,
              }
            : {}),
        },
        'request',
      );
    } else {
      request.log[request.lineLevel](
        {
          method: request.method,
          url: requestLoggedUrl(request),
          route,
          status: reply.statusCode,
          // A problem's catalogue code (an inference's line has none: sendProblem drops it).
          ...(request.problemCode !== undefined ? { code: request.problemCode } : {}),
          durationMs,
          ...(request.modelName ? { model: request.modelName } : {}),
          ...(servedVersion !== undefined ? { version: servedVersion } : {}),
        },
        'request',
      );
    }
    done();
  };
  const recordUnanswered = (request: FastifyRequest): void => {
    if (request.unanswered) return;
    request.unanswered = true;
    const url = request.routeOptions.url || request.allowedRoute;
    const route = url ? routeLabel(url) : 'unmatched';
    const seconds = (performance.now() - request.receivedAt) / 1000;
    const model = request.inference?.model ?? request.modelName ?? '';
    const servedVersion = request.inference?.version ?? request.servedVersion;
    if (behindConnectionEnd(request.raw)) {
      request.log.info(
        {
          method: request.method,
          url: requestLoggedUrl(request),
          route,
          durationMs: Math.round(seconds * 1e6) / 1000,
          ...(model ? { model } : {}),
        },
        REQUEST_DISCARDED,
      );
      return;
    }
    const version = servedVersion === undefined ? '' : String(servedVersion);
    // The timeout cuts the connection, so only the request still arriving on it got the 408; one
    // received whole before it (queued for a batch, pipelined) just lost its client.
    const timedOut = !request.raw.complete && requestTimedOut(request.raw.socket);
    // Counted under its code's status: CLIENT_ABORTED's (nginx's 499), or REQUEST_TIMEOUT's.
    const code: ErrorCode = timedOut ? 'REQUEST_TIMEOUT' : 'CLIENT_ABORTED';
    const status = errorCatalogue[code].status;
    metrics.observeRequest(request.method, route, String(status), model, version, seconds);
    request.log.info(
      {
        method: request.method,
        url: requestLoggedUrl(request),
        route,
        status,
        code,
        durationMs: Math.round(seconds * 1e6) / 1000,
        ...(model ? { model } : {}),
        ...(servedVersion !== undefined ? { version: servedVersion } : {}),
      },
      timedOut ? RECEIVE_TIMED_OUT : 'request aborted by the client',
    );
  };
  return { onResponse, recordUnanswered };
}
