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

/**
 * The inference.GRPCInferenceService definition, loaded from the vendored .proto, whose request
 * deserializers check the wire format strictly first (wire-check.ts) and never throw.
 */
export function inferenceServiceDefinition(): ServiceDefinition {
  const loaded = loadSync(PROTO_FILE, PROTO_OPTIONS);
  const definition = loadPackageDefinition(loaded) as unknown as {
    inference: { GRPCInferenceService: { service: ServiceDefinition } };
  };
  const service = definition.inference.GRPCInferenceService.service;
  const methods = loaded['inference.GRPCInferenceService'] as LoadedService;
  const topLevel = (name: string) =>
    (loaded[`inference.${name}`] as { type?: MessageDescriptor } | undefined)?.type;
  const strict: Record<string, ServiceDefinition[string]> = {};
  for (const [key, method] of Object.entries(service)) {
    const requestType = (methods[key]?.requestType.type as MessageDescriptor | undefined)?.name;
    if (requestType === undefined) throw new Error(`${key}: no request type in the .proto`);
    const rule = messageRule(requestType, 'inference', topLevel);
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
