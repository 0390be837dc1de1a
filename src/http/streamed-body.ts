import type { FastifyRequest } from 'fastify';
import { mediaTypeOf } from './media-type.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The media types the route reads as streams and holds to its own limit (recalibration
     * uploads: RECALIBRATION_BODY_LIMIT_BYTES, counted on the decoded bytes by the upload
     * readers, whose giving up stops the decoding). Other bodies, of this route too (the
     * recalibration's JSON), are held to its bodyLimit (BODY_LIMIT_BYTES), decoded or declared.
     */
    streamedBody?: readonly string[];
  }
}

/** Whether the request's body is one its route reads as a stream (streamedBody). */
export function readAsStream(request: Pick<FastifyRequest, 'headers' | 'routeOptions'>): boolean {
  const types = request.routeOptions.config.streamedBody;
  if (types === undefined) return false;
  return types.includes(mediaTypeOf(request.headers['content-type']));
}
