import { z } from 'zod';

/**
 * The request messages as @grpc/proto-loader decodes them (PROTO_OPTIONS: .proto field names,
 * defaults filled in, int64 as numbers, bytes as Buffers). Protobuf has already checked the wire
 * types; these schemas give the handlers their types and refuse anything else (parse, don't cast).
 */
const parameters = z.record(z.string(), z.unknown());

const tensorContents = z.object({
  bool_contents: z.array(z.unknown()),
  int_contents: z.array(z.unknown()),
  int64_contents: z.array(z.unknown()),
  uint_contents: z.array(z.unknown()),
  uint64_contents: z.array(z.unknown()),
  fp32_contents: z.array(z.number()),
  fp64_contents: z.array(z.unknown()),
  bytes_contents: z.array(z.unknown()),
});
export type TensorContents = z.output<typeof tensorContents>;

export const modelInferRequestSchema = z.object({
  model_name: z.string(),
  model_version: z.string(),
  id: z.string(),
  parameters,
  inputs: z.array(
    z.object({
      name: z.string(),
      datatype: z.string(),
      shape: z.array(z.number()),
      parameters,
      contents: tensorContents.nullable(),
    }),
  ),
  outputs: z.array(z.object({ name: z.string(), parameters })),
  raw_input_contents: z.array(z.instanceof(Uint8Array)),
});
export type ModelInferRequest = z.output<typeof modelInferRequestSchema>;

/** ModelReadyRequest and ModelMetadataRequest: a model name and an optional version. */
export const modelRefSchema = z.object({ name: z.string(), version: z.string() });
