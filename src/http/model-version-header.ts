/**
 * `X-Model-Version`: the version an answer is about — the one that computed a prediction's rows,
 * an export's, the one an activation made active, the one a recalibration published. One name,
 * written by `setModelVersion` and declared in the OpenAPI document by `modelVersionHeaderDoc`.
 */
import type { FastifyReply } from 'fastify';

export const MODEL_VERSION_HEADER_NAME = 'X-Model-Version';

/** A response header, as the OpenAPI document describes it. */
export interface HeaderDoc {
  type: 'string';
  description: string;
}

/** The header's entry in a response's `headers` (its description says which version). */
export function modelVersionHeaderDoc(description: string): Record<string, HeaderDoc> {
  return { [MODEL_VERSION_HEADER_NAME]: { type: 'string', description } };
}

/** Names `version` in the reply's X-Model-Version. */
export function setModelVersion(reply: FastifyReply, version: number): FastifyReply {
  return reply.header(MODEL_VERSION_HEADER_NAME, String(version));
}
