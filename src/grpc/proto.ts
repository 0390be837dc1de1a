import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { type ServiceDefinition as LoadedService, loadSync } from '@grpc/proto-loader';
import { type MessageDescriptor, messageRule, wireProblem } from './wire-check.js';

/** proto/ at the repository (or image) root: two levels up from src/grpc/ and dist/grpc/. */
export const PROTO_FILE = fileURLToPath(
  new URL('../../proto/open_inference_grpc.proto', import.meta.url),
);

/**
 * How messages look in JavaScript: field names as in the .proto (raw_input_contents), int64 as
 * numbers (shapes; one beyond 2^53 - 1 would be rounded, and messages.ts refuses it), defaults
 * filled in (empty repeated fields are [], absent strings ''), and the oneof of InferParameter
 * named.
 */
export const PROTO_OPTIONS = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
} as const;

/**
 * What a request deserializer gives for bytes that are no well-formed request message. grpc-js
 * answers INTERNAL "Error deserializing request", and tells the handler nothing (no log line, no
 * metric), when a deserializer throws; these never throw, and the handler refuses this as
 * INVALID_INPUT (INVALID_ARGUMENT) with `reason`.
 */
export class UndecodableRequest {
  constructor(readonly reason: string) {}
}

/** proto/health.proto: grpc.health.v1.Health, vendored beside the OIP .proto (health.ts). */
export const HEALTH_PROTO_FILE = fileURLToPath(
  new URL('../../proto/health.proto', import.meta.url),
);

/**
 * The inference.GRPCInferenceService definition, loaded from the vendored .proto, whose request
 * deserializers check the wire format strictly first (wire-check.ts) and never throw.
 */
export const inferenceServiceDefinition = (): ServiceDefinition =>
  strictServiceDefinition(PROTO_FILE, 'inference', 'GRPCInferenceService');

/** grpc.health.v1.Health, read as strictly as the inference service. */
export const healthServiceDefinition = (): ServiceDefinition =>
  strictServiceDefinition(HEALTH_PROTO_FILE, 'grpc.health.v1', 'Health');

/**
 * Service `pkg.name` of a .proto, whose request deserializers check the wire format strictly
 * first (wire-check.ts) and never throw.
 */
function strictServiceDefinition(file: string, pkg: string, name: string): ServiceDefinition {
  const loaded = loadSync(file, PROTO_OPTIONS);
  let service: unknown = loadPackageDefinition(loaded);
  for (const part of [...pkg.split('.'), name])
    service = (service as Record<string, unknown>)[part];
  const methods = loaded[`${pkg}.${name}`] as LoadedService;
  const topLevel = (message: string) =>
    (loaded[`${pkg}.${message}`] as { type?: MessageDescriptor } | undefined)?.type;
  const strict: Record<string, ServiceDefinition[string]> = {};
  for (const [key, method] of Object.entries((service as { service: ServiceDefinition }).service)) {
    const requestType = (methods[key]?.requestType.type as MessageDescriptor | undefined)?.name;
    if (requestType === undefined) throw new Error(`${key}: no request type in the .proto`);
    const rule = messageRule(requestType, pkg, topLevel);
    const decode = method.requestDeserialize;
    strict[key] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        const problem = wireProblem(bytes, rule);
        if (problem !== undefined) return new UndecodableRequest(problem);
        try {
          return decode(bytes);
        } catch (e) {
          return new UndecodableRequest(`${rule.name}: ${(e as Error).message}`);
        }
      },
    };
  }
  return strict;
}
