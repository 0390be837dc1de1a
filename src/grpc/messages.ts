import { z } from 'zod';
import { LIMITS, modelNameSchema } from '../service/index.js';

/**
 * The request messages as @grpc/proto-loader decodes them (PROTO_OPTIONS: .proto field names,
 * defaults filled in, int64 as numbers, bytes as Buffers), after the deserializer has checked the
 * wire format (wire-check.ts: wire types, lengths, UTF-8); these schemas give the handlers their types and refuse anything else (parse, don't cast),
 * with the HTTP routes' limits (LIMITS, modelNameSchema): a 100,000-character model name or id,
 * or a shape of 100,000 dimensions, made a status message of hundreds of kilobytes that stalled
 * the HTTP/2 connection it was sent on.
 */
const parameters = z.record(z.string(), z.unknown());

/**
 * One InferParameter as proto-loader decodes it (PROTO_OPTIONS' oneofs: the set field's name in
 * `parameter_choice`); the value is checked by whoever reads that parameter.
 */
export const inferParameterSchema = z.object({
  parameter_choice: z.string().optional(),
  int64_param: z.unknown().optional(),
});

const tensorContents = z.object({
  bool_contents: z.array(z.unknown()),
  int_contents: z.array(z.unknown()),
  int64_contents: z.array(z.unknown()),
  uint_contents: z.array(z.unknown()),
  uint64_contents: z.array(z.unknown()),
  // Any float the wire holds, NaN and ±Infinity too: contentsRows refuses those with the words
  // of every other route (checkFinite: `expected a finite number, got NaN`), not zod's.
  fp32_contents: z.array(z.custom<number>((value) => typeof value === 'number')),
  fp64_contents: z.array(z.unknown()),
  bytes_contents: z.array(z.unknown()),
});

const tensorName = z.string().max(LIMITS.nameChars);

/**
 * A dimension of a shape: an int64, read as a JavaScript number (PROTO_OPTIONS' longs: Number),
 * exact up to 2^53 - 1. One beyond is refused here, without echoing it: the rounded number
 * (9223372036854775807 read as 9223372036854775808, printed …776000) would be a value the client
 * never sent. A size is never negative.
 */
const shapeDimension = z
  .number()
  .int({
    error: 'expected an int64 of at most 2^53 - 1 (9007199254740991) in absolute value',
  })
  // As the REST schema's: a request's shape has sizes, not metadata's -1 for "any" (review44: a
  // [-1, 64] shape was told "at least one row is required").
  .min(0);

export const modelInferRequestSchema = z.object({
  model_name: modelNameSchema,
  model_version: z.string().max(LIMITS.nameChars),
  id: z.string().max(LIMITS.idChars),
  parameters,
  inputs: z
    .array(
      z.object({
        name: tensorName,
        datatype: tensorName,
        shape: z.array(shapeDimension).max(LIMITS.shapeDims),
        parameters,
        contents: tensorContents.nullable(),
      }),
    )
    .max(LIMITS.tensors),
  outputs: z.array(z.object({ name: tensorName, parameters })).max(LIMITS.tensors),
  raw_input_contents: z.array(z.instanceof(Uint8Array)).max(LIMITS.tensors),
});
export type ModelInferRequest = z.output<typeof modelInferRequestSchema>;

/** ModelReadyRequest and ModelMetadataRequest: a model name and an optional version. */
export const modelRefSchema = z.object({
  name: modelNameSchema,
  version: z.string().max(LIMITS.nameChars),
});

/** grpc.health.v1 HealthCheckRequest (Check and Watch): a health service name. */
export const healthCheckRequestSchema = z.object({ service: z.string() });
export type HealthCheckRequest = z.output<typeof healthCheckRequestSchema>;

/**
 * Reads one string field of a decoded request through a schema of that field alone, for what is
 * known of a call before its handler parses the whole message (the model of its log line, a
 * health service name): '' when the request has no such string.
 */
export function requestField(field: string): (request: unknown) => string {
  const schema = z.object({ [field]: z.string() });
  return (request) => {
    const parsed = schema.safeParse(request);
    return parsed.success ? (parsed.data[field] ?? '') : '';
  };
}
