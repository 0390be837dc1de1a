/**
 * A real gRPC client of inference.GRPCInferenceService (@grpc/grpc-js, the vendored .proto) and
 * an in-process server on a free port, for the gRPC tests and the fuzz test.
 */
import { Client, credentials, loadPackageDefinition, Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { ComputeLane } from '../../src/grpc/compute-lane.js';
import { createGrpcServer, type GrpcObserver, listenGrpc } from '../../src/grpc/grpc-server.js';
import { inferenceServiceDefinition, PROTO_FILE, PROTO_OPTIONS } from '../../src/grpc/proto.js';
import { InferenceService, type Log, silentLog } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from './app.js';

export interface GrpcError {
  code: number;
  details: string;
  metadata: Metadata;
}

export interface GrpcClient {
  call<T = Record<string, unknown>>(
    method: string,
    request: unknown,
    metadata?: Record<string, string>,
  ): Promise<{ ok: true; value: T } | { ok: false; error: GrpcError }>;
  /** A call the test can cancel (or give a deadline): its handle and its outcome. */
  start(
    method: string,
    request: unknown,
    options?: { deadline?: Date },
  ): { cancel(): void; outcome: Promise<{ ok: boolean; code?: number; value?: unknown }> };
  close(): void;
}

type Methods = Record<
  string,
  (
    request: unknown,
    metadata: Metadata,
    options: { deadline?: Date },
    callback: (error: GrpcError | null, value: unknown) => void,
  ) => { cancel(): void }
>;

export function grpcClient(port: number, options: { channel?: number } = {}): GrpcClient {
  const definition = loadPackageDefinition(loadSync(PROTO_FILE, PROTO_OPTIONS)) as unknown as {
    inference: {
      GRPCInferenceService: new (address: string, creds: unknown, options: object) => Client;
    };
  };
  // Channels with different options do not share a connection (grpc-js pools equal ones).
  const client = new definition.inference.GRPCInferenceService(
    `127.0.0.1:${port}`,
    credentials.createInsecure(),
    options.channel === undefined ? {} : { 'normserve.test_channel': options.channel },
  );
  return {
    call: (method, request, headers = {}) =>
      new Promise((resolve) => {
        const metadata = new Metadata();
        for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
        (client as unknown as Methods)[method]!(request, metadata, {}, (error, value) =>
          resolve(error ? { ok: false, error } : { ok: true, value: value as never }),
        );
      }),
    start: (method, request, options = {}) => {
      let call: { cancel(): void } | undefined;
      const outcome = new Promise<{ ok: boolean; code?: number; value?: unknown }>((resolve) => {
        call = (client as unknown as Methods)[method]!(
          request,
          new Metadata(),
          options,
          (error, value) => resolve(error ? { ok: false, code: error.code } : { ok: true, value }),
        );
      });
      return { cancel: () => call!.cancel(), outcome };
    },
    close: () => client.close(),
  };
}

/**
 * A gRPC server over a test app's registry (same InferenceService options as the app's, or the
 * given service), reporting to `observer` and `log` when given.
 */
export async function startGrpc(
  t: TestApp,
  options: {
    apiToken?: string;
    batchMaxDelayUs?: number;
    inference?: InferenceService;
    observer?: GrpcObserver;
    log?: Log;
    computeLane?: ComputeLane;
    receiveTimeoutMs?: number;
    maxConcurrentStreams?: number;
  } = {},
) {
  const inference =
    options.inference ??
    (options.batchMaxDelayUs === undefined
      ? t.app.deps.inference
      : new InferenceService(t.registry, {
          batchMaxDelayUs: options.batchMaxDelayUs,
          batchMaxRows: t.config.BATCH_MAX_ROWS,
        }));
  const server = createGrpcServer({
    inference,
    version: '0.0.0-test',
    maxBatchSize: t.config.MAX_BATCH_SIZE,
    maxMessageBytes: t.config.BODY_LIMIT_BYTES,
    apiToken: options.apiToken,
    log: options.log ?? silentLog,
    ...(options.observer ? { observer: options.observer } : {}),
    // The app's serving phase, as server-worker.ts hands the same one to both transports.
    phase: t.app.deps.phase,
    ...(options.computeLane ? { computeLane: options.computeLane } : {}),
    ...(options.receiveTimeoutMs !== undefined
      ? { receiveTimeoutMs: options.receiveTimeoutMs }
      : {}),
    ...(options.maxConcurrentStreams !== undefined
      ? { maxConcurrentStreams: options.maxConcurrentStreams }
      : {}),
  });
  const handle = await listenGrpc(server, '127.0.0.1', 0);
  const client = grpcClient(handle.port);
  return {
    ...handle,
    client,
    inference,
    stop: async () => {
      client.close();
      await handle.close(5_000);
    },
  };
}

/** Little-endian float32 bytes of a gRPC raw content as numbers. */
export const rawFloat32 = (bytes: Uint8Array): number[] =>
  Array.from(
    new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
  );

/** One observed call, as the server's observer reports it. */
export interface RecordedCall {
  method: string;
  code: string;
  model: string;
}

/** One log line: its level and message, then the fields the server logged. */
export interface RecordedLine {
  level: string;
  msg?: string | undefined;
  grpcMethod?: string;
  code?: string;
  error?: string;
  [field: string]: unknown;
}

export interface RecordedGrpc {
  /** The gRPC server over a test app, logging into `lines` and observing into `records`. */
  readonly server: Awaited<ReturnType<typeof startGrpc>>;
  /** A raw @grpc/grpc-js client of the server, for bytes no generated stub would send. */
  readonly raw: Client;
  readonly records: RecordedCall[];
  readonly lines: RecordedLine[];
}

/**
 * Registers the suite's hooks for a gRPC server (over a test app made with `appOptions`) whose
 * log and observer record into arrays emptied before each test, and a raw client of it.
 */
export function useRecordedGrpc(appOptions: Parameters<typeof makeTestApp>[0] = {}): RecordedGrpc {
  let t: TestApp | undefined;
  let g: Awaited<ReturnType<typeof startGrpc>> | undefined;
  let raw: Client | undefined;
  const records: RecordedCall[] = [];
  const lines: RecordedLine[] = [];
  beforeAll(async () => {
    t = await makeTestApp(appOptions);
    const line = (level: string) => (obj: object, msg?: string) =>
      lines.push({ level, msg, ...obj });
    const log: Log = { info: line('info'), warn: line('warn'), error: line('error') };
    g = await startGrpc(t, {
      log,
      observer: {
        observeGrpc: (method, code, model) => records.push({ method, code, model }),
        observeInference: () => {},
      },
    });
    raw = new Client(`127.0.0.1:${g.port}`, credentials.createInsecure());
  });
  afterAll(async () => {
    raw?.close();
    await g?.stop();
    await t?.close();
  });
  beforeEach(() => {
    records.length = 0;
    lines.length = 0;
  });
  return {
    get server() {
      if (!g) throw new Error('useRecordedGrpc: the server starts in beforeAll');
      return g;
    },
    get raw() {
      if (!raw) throw new Error('useRecordedGrpc: the client starts in beforeAll');
      return raw;
    },
    records,
    lines,
  };
}

/** What a test started: its app and the stop of its gRPC server, each once started. */
export interface StartedPerTest<A> {
  app: A | undefined;
  stop: (() => Promise<void>) | undefined;
}

/**
 * For suites whose tests each start an app and a gRPC server over it: registers the afterEach
 * that stops the test's server, then closes its app. A test sets `app` and `stop` as it starts them.
 */
export function grpcPerTest<A extends { close(): Promise<void> }>(): StartedPerTest<A> {
  const started: StartedPerTest<A> = { app: undefined, stop: undefined };
  afterEach(async () => {
    await started.stop?.();
    await started.app?.close();
    started.stop = undefined;
    started.app = undefined;
  });
  return started;
}

/**
 * A ModelInfer request as one gRPC message frame (uncompressed flag, 4-byte big-endian length, the
 * serialized message), for raw HTTP/2 clients: `rows` rows of digits' 64 values, `values` or zeros.
 */
export function modelInferFrame(rows = 1, values?: Uint8Array): Buffer {
  const message = inferenceServiceDefinition().ModelInfer!.requestSerialize({
    model_name: 'digits',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 64] }],
    raw_input_contents: [values ?? Buffer.alloc(rows * 64 * 4)],
  });
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/**
 * What an HTTP/2 client sends first: its preface and an empty SETTINGS frame (RFC 9113 §3.4,
 * §6.5), for a raw TCP client that opens a connection and then does nothing more.
 */
export const HTTP2_CLIENT_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);
