import type { FastifyRequest } from 'fastify';
import type { ErrorCode } from '../errors/index.js';
import type { InferenceObservation, PredictOutput } from '../service/index.js';

/**
 * What a request did, for its log line and metrics (set by the inference routes): what the
 * metrics observe of it (as of a gRPC ModelInfer), and the batching its log line tells.
 */
export interface InferenceContext extends InferenceObservation {
  /** Rows of the engine call that computed this request's rows (> rows when batched). */
  batchRows: number;
  /** Time queued for a dynamic batch. */
  queueMs: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    inference: InferenceContext | undefined;
    /** The model a request addressed (set early so even failures are attributed). */
    modelName: string | undefined;
    /**
     * The version a request served without an inference (the ONNX download): its metrics and
     * log line carry it as the prediction routes carry theirs.
     */
    servedVersion: number | undefined;
    /**
     * A 405's: the URL pattern of the route found at its path with another method (not-found.ts),
     * the route its log line and metrics name; unset for every request a route took.
     */
    allowedRoute: string | undefined;
    /**
     * The catalogue code of the problem it was answered with (problem.ts, sendProblem), for its
     * request line; unset for a request answered without one.
     */
    problemCode: ErrorCode | undefined;
    /**
     * Its body is being read (from the first preParsing hook on): an error then is the body's,
     * which a path no route serves answers with its 404 or 405 instead (app.ts).
     */
    readingBody: boolean;
    /** performance.now() when the request arrived (for requests that never get a response). */
    receivedAt: number;
    /**
     * It got no response sent whole — its client went, or it came behind a response that closed
     * its connection — and was recorded so (request-log.ts's recordUnanswered), by no other hook.
     */
    unanswered: boolean;
    /**
     * The level of its request line: `warn` when it was answered with a problem that is a state
     * of the server (problem.ts, problemLogLevel), else `info`.
     */
    lineLevel: 'info' | 'warn';
    /**
     * Set by a route that answers REQUEST_TIMEOUT_MS's cut of its upload itself
     * (connection-limits.ts): called instead of writing the 408 at once, it ends the route's
     * reading, and the route answers once what the upload held is released (a recalibration's
     * lock and job), so a client retrying on the 408 finds the model free.
     */
    onReceiveTimeout: (() => void) | undefined;
  }
}

export function recordInference(request: FastifyRequest, out: PredictOutput, fused: boolean): void {
  request.inference = {
    model: out.model,
    version: out.version,
    rows: out.rows,
    computeMs: out.computeMs,
    fused,
    batchRows: out.batchRows,
    queueMs: out.queueMs,
  };
}
