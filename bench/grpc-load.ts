/**
 * A closed-loop gRPC load generator (the gRPC counterpart of autocannon): `connections` calls in
 * flight on one channel each, for `durationSeconds`; requests/s and latency percentiles.
 */
import { type Client, credentials, loadPackageDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { PROTO_FILE, PROTO_OPTIONS } from '../src/grpc/proto.js';

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

type Unary = (request: unknown, callback: (error: Error | null) => void) => void;

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

export async function grpcLoad(options: {
  port: number;
  method: string;
  request: unknown;
  connections: number;
  durationSeconds: number;
}): Promise<LoadResult> {
  const definition = loadPackageDefinition(loadSync(PROTO_FILE, PROTO_OPTIONS)) as unknown as {
    inference: { GRPCInferenceService: new (a: string, c: unknown, o: object) => Client };
  };
  // One channel per "connection", like autocannon's sockets (a distinct channel option keeps
  // grpc-js from sharing one subchannel between them).
  const clients = Array.from(
    { length: options.connections },
    (_, i) =>
      new definition.inference.GRPCInferenceService(
        `127.0.0.1:${options.port}`,
        credentials.createInsecure(),
        { 'grpc.bench_channel': i },
      ),
  );
  const latencies: number[] = [];
  let errors = 0;
  // Warm-up: one call per channel (connects, JIT) before timing.
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((done) =>
          (c as unknown as Record<string, Unary>)[options.method]!(options.request, () => done()),
        ),
    ),
  );
  const started = performance.now();
  const end = started + options.durationSeconds * 1000;
  await Promise.all(
    clients.map(async (client) => {
      const call = (client as unknown as Record<string, Unary>)[options.method]!.bind(client);
      while (performance.now() < end) {
        const t0 = performance.now();
        await new Promise<void>((done) =>
          call(options.request, (error) => {
            if (error) errors++;
            else latencies.push(performance.now() - t0);
            done();
          }),
        );
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  return {
    requestsPerSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errors,
  };
}
