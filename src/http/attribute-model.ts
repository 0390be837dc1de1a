import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ModelRegistry } from '../service/index.js';

/**
 * An onRequest hook for routes with a `:name` parameter: attributes the request to that model
 * (log line, metric labels), even when it fails later (415, malformed JSON, validation). Only
 * models of the registry are named, so requests for made-up models cannot create label values.
 */
export function attributeModel(registry: ModelRegistry) {
  return (request: FastifyRequest, _reply: FastifyReply, done: () => void): void => {
    const name = (request.params as { name?: unknown } | undefined)?.name;
    if (typeof name === 'string' && registry.has(name)) request.modelName = name;
    done();
  };
}
