import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type ServiceDefinition } from '@grpc/grpc-js';
import { type ServiceDefinition as LoadedService, loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { checkWire, type MessageDescriptor, messageRule, type OneofOf } from './wire-check.js';
import { mergeInstances } from './wire-merge.js';

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
  const oneofOf = oneofsOf(file);
  const strict: Record<string, ServiceDefinition[string]> = {};
  for (const [key, method] of Object.entries((service as { service: ServiceDefinition }).service)) {
    const requestType = (methods[key]?.requestType.type as MessageDescriptor | undefined)?.name;
    if (requestType === undefined) throw new Error(`${key}: no request type in the .proto`);
    const rule = messageRule(requestType, pkg, topLevel, oneofOf);
    const decode = method.requestDeserialize;
    strict[key] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        const checked = checkWire(bytes, rule);
        if (checked.problem !== undefined) return new UndecodableRequest(checked.problem);
        try {
          return decode(checked.merge ? (mergeInstances(bytes, rule) as Buffer) : bytes);
        } catch (e) {
          return new UndecodableRequest(`${rule.name}: ${(e as Error).message}`);
        }
      },
    };
  }
  return strict;
}

/**
 * The oneofs of a .proto's messages, from protobufjs's reflection: proto-loader's descriptors give
 * every field `oneofIndex` 0, a oneof's member or not (its toObject fills in defaults).
 */
function oneofsOf(file: string): OneofOf {
  const root = protobuf.loadSync(file);
  return (message, number) => {
    // A map's entry (`…Request.ParametersEntry`) is proto-loader's, not a protobufjs type: no oneof.
    const type = root.lookup(message);
    if (!(type instanceof protobuf.Type)) return undefined;
    const part = type.fieldsById[number]?.partOf;
    return part ? type.oneofsArray.indexOf(part) : undefined;
  };
}
