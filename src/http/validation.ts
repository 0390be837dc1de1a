import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import type { z } from 'zod';
import {
  describeLocations,
  type ErrorLocation,
  formatPath,
  issuesToLocations,
  NormserveError,
} from '../errors/index.js';

const isStream = (data: unknown): boolean =>
  typeof data === 'object' &&
  data !== null &&
  typeof (data as { pipe?: unknown }).pipe === 'function';

const roots: Record<string, string> = {
  body: '',
  querystring: 'query',
  params: 'path',
  headers: 'headers',
};

/**
 * zod reports unknown keys of a strict object once, at the object (`(root): Unrecognized key`);
 * each key is named as its own place instead, e.g. `instance: unknown field`.
 */
function locations(issues: readonly z.core.$ZodIssue[], root: string): ErrorLocation[] {
  return issues.flatMap((issue) =>
    issue.code === 'unrecognized_keys'
      ? issue.keys.map((key) => ({
          path: formatPath([...issue.path, key], root),
          message: root === 'query' ? 'unknown query parameter' : 'unknown field',
        }))
      : issuesToLocations([issue], root),
  );
}

/**
 * Validates with the route's zod schema and fails with INVALID_INPUT naming each place, e.g.
 * `instances[3][17]: expected a finite number` (paths of the body start at its top-level key).
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    // Streamed uploads (NDJSON, float32) reach the handler as a stream, read and checked there.
    if (httpPart === 'body' && isStream(data)) return { value: data };
    const result = schema.safeParse(data);
    if (result.success) return { value: result.data };
    const errors = locations(result.error.issues, roots[httpPart ?? 'body'] ?? '');
    return { error: new NormserveError('INVALID_INPUT', describeLocations(errors, 3), { errors }) };
  };

/**
 * Responses are serialised with JSON.stringify; their zod schemas document the API (OpenAPI) but
 * are not re-checked on every response, which would cost as much as validating the request.
 */
export const serializerCompiler: FastifySerializerCompiler<z.ZodType> = () => (data) =>
  JSON.stringify(data);
