/**
 * A grpcurl-style client of the gRPC Open Inference Protocol, for the README and for machines
 * without grpcurl: `npm run -s grpc -- [host:port] <Method> [json request]`. Requests and replies
 * use the protobuf JSON mapping grpcurl uses (lowerCamelCase names, int64 as strings, bytes as
 * base64), and the vendored proto/open_inference_grpc.proto.
 */
import {
  type Client,
  credentials,
  loadPackageDefinition,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { PROTO_FILE } from '../src/grpc/proto.js';

const root = protobuf.loadSync(PROTO_FILE);
const service = root.lookupService('inference.GRPCInferenceService');
const USAGE = `usage: npm run -s grpc -- [-H 'name: value' …] [host:port] <Method> [json request]

Calls one method of the gRPC Open Inference Protocol (inference.GRPCInferenceService) at
host:port (default 127.0.0.1:8081, the server's GRPC_PORT) and prints the reply as grpcurl does.
Requests and replies use the protobuf JSON mapping (lowerCamelCase or proto names, int64 as
strings, bytes as base64); the request defaults to {}. -H adds a request header (metadata), as
grpcurl's -H does: -H 'authorization: Bearer <API_TOKEN>' when the server sets API_TOKEN. An error
prints its status code and message, and normserve's error code (the normserve-code trailer).

Methods: ${Object.keys(service.methods).join(', ')}

Examples:
  npm run -s grpc -- ServerReady
  npm run -s grpc -- localhost:8081 ModelMetadata '{"name":"digits"}'
`;

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const metadata = new Metadata();
for (let i = args.indexOf('-H'); i >= 0; i = args.indexOf('-H')) {
  const header = args[i + 1];
  const colon = header?.indexOf(':') ?? -1;
  if (header === undefined || colon <= 0) {
    process.stderr.write(`grpc: -H takes 'name: value', got ${JSON.stringify(header)}\n${USAGE}`);
    process.exit(2);
  }
  try {
    metadata.add(header.slice(0, colon).trim().toLowerCase(), header.slice(colon + 1).trim());
  } catch (e) {
    // grpc-js refuses names outside [0-9a-z_.-] and text values for -bin keys.
    process.stderr.write(`grpc: -H ${JSON.stringify(header)}: ${(e as Error).message}\n`);
    process.exit(2);
  }
  args.splice(i, 2);
}
const unknown = args.find((a) => a.startsWith('-'));
if (unknown !== undefined) {
  process.stderr.write(`grpc: unknown option ${unknown}\n${USAGE}`);
  process.exit(2);
}
const address = args[0]?.includes(':') ? args.shift()! : '127.0.0.1:8081';
const method = args[0];
const body = args[1] ?? '{}';
if (!method) {
  process.stderr.write(USAGE);
  process.exit(2);
}

const rpc = service.methods[method];
if (!rpc) {
  process.stderr.write(
    `unknown method ${method}; one of ${Object.keys(service.methods).join(', ')}\n`,
  );
  process.exit(2);
}
const requestType = root.lookupType(rpc.requestType);
const responseType = root.lookupType(rpc.responseType);

/** Field names as the JSON mapping reads them: proto names (model_name) or JSON names (modelName). */
function jsonNames(value: unknown, inMap = false): unknown {
  if (Array.isArray(value)) return value.map((v) => jsonNames(v));
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [
      inMap ? k : k.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()),
      jsonNames(v, !inMap && k === 'parameters'),
    ]),
  );
}
// JSON mapping → message → the plain object grpc-js sends (camelCase names, bytes as Buffers).
/** The request body's JSON, or the tool's one line and exit 2 (as grpcurl: no stack trace). */
function requestJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    process.stderr.write(`grpc: the request is not valid JSON (${(e as Error).message})\n${USAGE}`);
    process.exit(2);
  }
}
const request = requestType.toObject(
  requestType.fromObject(jsonNames(requestJson(body)) as Record<string, unknown>),
  { longs: Number, bytes: Buffer, defaults: false },
);
const definition = loadPackageDefinition(
  loadSync(PROTO_FILE, { longs: Number, defaults: false }),
) as unknown as { inference: { GRPCInferenceService: new (a: string, c: unknown) => Client } };
const client = new definition.inference.GRPCInferenceService(address, credentials.createInsecure());
(
  client as unknown as Record<
    string,
    (r: unknown, m: Metadata, cb: (e: ServiceError | null, v: unknown) => void) => void
  >
)[method]!(request, metadata, (error, reply) => {
  client.close();
  if (error) {
    // As grpcurl prints a status: the code's name in CamelCase (NOT_FOUND → NotFound).
    const name = (status[error.code] ?? String(error.code))
      .toLowerCase()
      .replace(/(^|_)([a-z])/g, (_, __: string, c: string) => c.toUpperCase());
    const code = error.metadata?.get('normserve-code')[0];
    process.stderr.write(
      `ERROR:\n  Code: ${name}\n  Message: ${error.details ?? error.message}\n${code === undefined ? '' : `  normserve-code: ${String(code)}\n`}`,
    );
    process.exit(1);
  }
  const message = responseType.fromObject(reply as Record<string, unknown>);
  const json = responseType.toObject(message, { longs: String, bytes: String, json: true });
  process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
});
