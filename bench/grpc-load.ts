/**
 * A closed-loop gRPC load generator, the gRPC counterpart of autocannon: `connections` HTTP/2
 * connections with one call in flight each, for `durationSeconds`; requests/s, latency
 * percentiles and the CPU it used itself.
 *
 * Like autocannon, which sends the same prepared request bytes again and again, it encodes the
 * request message once (with the service's own .proto and protobuf options) and speaks gRPC's
 * HTTP/2 mapping directly with node:http2 (a 5-byte length prefix before the message, the status
 * in the trailers): a grpc-js client re-encoded the 64 KiB message on every call and ran its
 * channel stack (resolver, load balancer, filters) per call, and spent more CPU per call than the
 * server (bench/README.md). The first response is decoded and checked; every response's
 * `grpc-status` must be 0. The client offers a large receive window, so the server's replies
 * never wait for a WINDOW_UPDATE; what the client may send is the server's to decide.
 */
import { type ClientHttp2Session, connect, constants } from 'node:http2';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_FILE, PROTO_OPTIONS } from '../src/grpc/proto.js';

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU time (user + system) of this process per completed call, in µs. */
  clientCpuUsPerRequest: number;
  /** Completed calls. */
  requests: number;
}

interface MethodDefinition {
  path: string;
  requestSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** The ModelInfer-style method's definition from the vendored .proto. */
function methodOf(name: string): MethodDefinition {
  const definition = loadSync(PROTO_FILE, PROTO_OPTIONS) as unknown as Record<
    string,
    Record<string, MethodDefinition>
  >;
  const method = definition['inference.GRPCInferenceService']?.[name];
  if (!method) throw new Error(`no method ${name} in ${PROTO_FILE}`);
  return method;
}

/** gRPC's length-prefixed message: compressed flag 0, 4-byte big-endian length, the bytes. */
function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

const RECEIVE_WINDOW = 4 * 1024 * 1024;

function open(port: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`, {
      settings: { initialWindowSize: RECEIVE_WINDOW },
    });
    session.once('error', reject);
    session.once('connect', () => {
      session.setLocalWindowSize(RECEIVE_WINDOW);
      session.off('error', reject);
      resolve(session);
    });
  });
}

/** One call: resolves with the response message bytes, or rejects with the gRPC status. */
function call(session: ClientHttp2Session, path: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let status: string | undefined;
    let message = '';
    stream.on('response', (headers) => {
      // A trailers-only response carries the status in its headers.
      if (headers['grpc-status'] !== undefined) {
        status = String(headers['grpc-status']);
        message = String(headers['grpc-message'] ?? '');
      }
    });
    stream.on('trailers', (trailers) => {
      status = String(trailers['grpc-status']);
      message = String(trailers['grpc-message'] ?? '');
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('close', () => {
      if (status !== '0') {
        reject(new Error(`grpc-status ${status ?? 'missing'} ${decodeURIComponent(message)}`));
        return;
      }
      const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      resolve(data.subarray(5, 5 + data.readUInt32BE(1)));
    });
    stream.end(body);
  });
}

export async function grpcLoad(options: {
  port: number;
  method: string;
  request: unknown;
  connections: number;
  durationSeconds: number;
  /** Checks the first decoded response (throws to fail the run). */
  check?: (response: unknown) => void;
}): Promise<LoadResult> {
  const method = methodOf(options.method);
  const body = frame(method.requestSerialize(options.request));
  const sessions = await Promise.all(
    Array.from({ length: options.connections }, () => open(options.port)),
  );
  try {
    // Warm-up and check: one call per connection before timing.
    const first = await Promise.all(sessions.map((s) => call(s, method.path, body)));
    options.check?.(method.responseDeserialize(first[0]!));
    const latencies: number[] = [];
    let errors = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    const end = started + options.durationSeconds * 1000;
    await Promise.all(
      sessions.map(async (session) => {
        while (performance.now() < end) {
          const t0 = performance.now();
          try {
            await call(session, method.path, body);
            latencies.push(performance.now() - t0);
          } catch {
            errors++;
          }
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    latencies.sort((a, b) => a - b);
    return {
      requestsPerSecond: latencies.length / elapsed,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      errors,
      requests: latencies.length,
      clientCpuUsPerRequest: (used.user + used.system) / Math.max(1, latencies.length),
    };
  } finally {
    for (const s of sessions) s.close();
  }
}
