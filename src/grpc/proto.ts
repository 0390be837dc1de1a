import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** proto/ at the repository (or image) root: two levels up from src/grpc/ and dist/grpc/. */
export const PROTO_FILE = fileURLToPath(
  new URL('../../proto/open_inference_grpc.proto', import.meta.url),
);

/**
 * How messages look in JavaScript: field names as in the .proto (raw_input_contents), int64 as
 * numbers (shapes; values beyond 2^53 are refused by the shape checks anyway), defaults filled in
 * (empty repeated fields are [], absent strings ''), and the oneof of InferParameter named.
 */
export const PROTO_OPTIONS = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/** The inference.GRPCInferenceService definition, loaded from the vendored .proto. */
export function inferenceServiceDefinition(): ServiceDefinition {
  const definition = loadPackageDefinition(loadSync(PROTO_FILE, PROTO_OPTIONS)) as unknown as {
    inference: { GRPCInferenceService: { service: ServiceDefinition } };
  };
  return definition.inference.GRPCInferenceService.service;
}
