import type { FastifyRequest } from 'fastify';

/** What a request did, for its log line and metrics (set by the inference routes). */
export interface InferenceContext {
  model: string;
  version: number;
  rows: number;
  computeMs: number;
  fused: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    inference: InferenceContext | undefined;
    /** The model a request addressed (set early so even failures are attributed). */
    modelName: string | undefined;
    /** performance.now() when the request arrived (for requests that never get a response). */
    receivedAt: number;
  }
}

export function recordInference(request: FastifyRequest, context: InferenceContext): void {
  request.inference = context;
}
