import type { FastifyRequest } from 'fastify';

/**
 * The media types whose bodies are read as JSON (app.ts registers parseJsonBody for each; a 415
 * lists them for every route that reads JSON). application/json, and the type curl sends for
 * `-d @file` without -H: TF Serving's documented examples post JSON that way, so it is read as
 * JSON (and must parse as JSON, with the same protections), never as form fields.
 */
export const JSON_BODY_TYPES = ['application/json', 'application/x-www-form-urlencoded'] as const;

/** Raw bytes: the Open Inference Protocol's binary tensors, TF-style float32 rows. */
export const OCTET_STREAM = 'application/octet-stream';
/** JSON lines of rows, a :recalibrate upload. */
export const NDJSON = 'application/x-ndjson';

const [JSON_TYPE, ...READ_AS_JSON] = JSON_BODY_TYPES;

/** The media types a route declares (`consumes`, also what the OpenAPI document lists), else JSON. */
function declaredTypes(request: FastifyRequest): readonly string[] {
  const consumes = (request.routeOptions?.schema as { consumes?: unknown } | undefined)?.consumes;
  return Array.isArray(consumes) && consumes.length > 0 ? consumes : [JSON_TYPE];
}

/**
 * The media types a route reads, as a 415 lists them: JSON with every type whose body is read as
 * JSON (JSON_BODY_TYPES, the list the parsers are registered from): `application/json,
 * application/x-www-form-urlencoded (read as JSON)`, then the route's others.
 */
export function acceptedTypes(request: FastifyRequest): readonly string[] {
  return declaredTypes(request).flatMap((type) =>
    type === JSON_TYPE ? [type, ...READ_AS_JSON.map((t) => `${t} (read as JSON)`)] : [type],
  );
}

/** The types a route reads that are not read as JSON (:recalibrate's NDJSON, CSV and float32). */
export function otherBodyTypes(request: FastifyRequest): readonly string[] {
  return declaredTypes(request).filter(
    (type) => !(JSON_BODY_TYPES as readonly string[]).includes(type),
  );
}
