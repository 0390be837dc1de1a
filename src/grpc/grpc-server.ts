import {
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  status,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { z } from 'zod';
import {
  describeLocations,
  isNormserveError,
  issuesToLocations,
  NormserveError,
  quote,
  safeParseWorded,
} from '../errors/index.js';
import {
  type AvailableVersion,
  bearerTokenCheck,
  type CallerSignal,
  CLASSIFICATION_PARAMETER,
  checkClassifications,
  checkFinite,
  checkFiniteOutputs,
  checkInputTensor,
  classificationCount,
  classifiedTensor,
  compileAccepts,
  drainLastStepsMs,
  FP32_BYTES,
  failInput,
  float32Rows,
  type InferenceObserver,
  type InferenceService,
  type InputShape,
  inputShapeOf,
  isModelReady,
  type Log,
  type ModelRegistry,
  OIP_EXTENSIONS,
  type OutputName,
  oipModelMetadata,
  outputTensor,
  type PredictOutput,
  REQUEST_ID_LOG_FIELD,
  type RowSource,
  readFloat32,
  requestedOutputs,
  type ServingPhase,
  serverReadiness,
  tensorBytes,
  VERSION_NAME_PATTERN,
} from '../service/index.js';
import { CallAdmission } from './call-admission.js';
import { callInterceptor } from './call-interceptor.js';
import { type CallRecord, callRecorder, callRecordOf } from './call-recorder.js';
import { ComputeLane } from './compute-lane.js';
import { limitGrpcConnections } from './connection-limits.js';
import { ContentTypeCheck } from './content-type.js';
import { widenConnectionWindows, widenStreamWindows } from './flow-control.js';
import { HealthStatus, healthRequestService } from './health.js';
import { http2ServersOf } from './http2-servers.js';
import { LingeringConnections } from './lingering-connections.js';

export { routeGrpcJsLog } from './grpc-js-log.js';

import { errorStatus, statusMessage } from './grpc-status.js';
import {
  healthCheckRequestSchema,
  inferParameterSchema,
  type ModelInferRequest,
  modelInferRequestSchema,
  modelRefSchema,
  requestField,
} from './messages.js';
import {
  healthServiceDefinition,
  inferenceServiceDefinition,
  UndecodableRequest,
} from './proto.js';
import {
  INFER_BYTES_PER_VALUE,
  INFER_ENVELOPE_BYTES,
  limitReceiving,
  SMALL_MESSAGE_BYTES,
} from './receive-limits.js';
import { resetUnfinishedRequests, UnreadAnswers } from './request-reset.js';
import { recordUnimplemented, UNKNOWN_METHOD } from './unimplemented.js';

/**
 * What the gRPC server reports per call (cli/server-worker.ts passes the Prometheus metrics): every
 * call, and each ModelInfer answered, as HTTP's inference routes report theirs.
 */
export interface GrpcObserver extends InferenceObserver {
  observeGrpc(method: string, code: string, model: string, seconds: number): void;
}

export interface GrpcServerOptions {
  inference: InferenceService;
  /** normserve's version (ServerMetadata). */
  version: string;
  /** MAX_BATCH_SIZE: most rows per request. */
  maxBatchSize: number;
  /** BODY_LIMIT_BYTES: the largest message accepted, as for HTTP bodies. */
  maxMessageBytes: number;
  /**
   * API_TOKEN: when set, ModelInfer needs `authorization: Bearer <token>` metadata; a call without
   * it is answered UNAUTHENTICATED from its headers, before its message is read (call-admission.ts).
   */
  apiToken?: string | undefined;
  /**
   * REQUEST_TIMEOUT_MS: a call's request must arrive whole within this, else DEADLINE_EXCEEDED
   * (REQUEST_TIMEOUT); 0 or absent = no limit.
   */
  receiveTimeoutMs?: number;
  /**
   * GRPC_MAX_CONCURRENT_STREAMS: calls (health watches included) open at once on one connection
   * (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS); absent = DEFAULT_MAX_CONCURRENT_STREAMS.
   */
  maxConcurrentStreams?: number;
  log: Log;
  observer?: GrpcObserver;
  /** MAX_CONNECTIONS: open connections on the gRPC port; more are closed as they arrive. */
  maxConnections?: number;
  /** Called for each connection closed on arrival (normserve_connections_dropped_total). */
  onConnectionDropped?: () => void;
  /**
   * GRPC_MAX_CONNECTION_AGE_MS: a connection older than this (±10 % jitter, grpc-js) is sent a
   * GOAWAY, so clients reconnect and a Kubernetes Service spreads them again; 0 = never.
   */
  maxConnectionAgeMs?: number;
  /** GRPC_MAX_CONNECTION_AGE_GRACE_MS: time left to its calls after that GOAWAY; 0 = no limit. */
  maxConnectionAgeGraceMs?: number;
  /**
   * GRPC_KEEPALIVE_TIME_MS: each connection is pinged this long after its last ping was answered
   * (grpc-js's `grpc.keepalive_time_ms`) and destroyed when an answer is `keepaliveTimeoutMs`
   * late: a connection nghttp2 stopped reading is freed so (docs/grpc.md, "Dead connections"); 0 = off.
   */
  keepaliveTimeMs?: number;
  /** GRPC_KEEPALIVE_TIMEOUT_MS: how late a ping's answer may be (grpc-js's default: 20 s). */
  keepaliveTimeoutMs?: number;
  /** The process's serving phase: health is NOT_SERVING from a shutdown signal on, as /readyz. */
  phase?: ServingPhase;
  /** The lane ModelInfer calls compute in (compute-lane.ts); a test gives one whose turns it holds. */
  computeLane?: ComputeLane;
}

/**
 * grpc-js's own INTERNAL statuses for a request the client got wrong: a message that does not
 * decompress with its grpc-encoding, a grpc-timeout that is no timeout. Logged at info like every
 * other client error, not as a fault of the server (review54: any client could fill the error log).
 */
const CLIENT_CAUSED_INTERNAL = /^(?:Failed to decompress message|Invalid grpc-timeout value)/;

/** What listenGrpc needs of a server createGrpcServer made. */
interface ServerExtras {
  health: HealthStatus;
  admission: CallAdmission;
  contentTypes: ContentTypeCheck;
  unreadAnswers: UnreadAnswers;
  maxConnections?: number | undefined;
  onConnectionDropped?: (() => void) | undefined;
  log: Log;
}
const extras = new WeakMap<Server, ServerExtras>();

export interface GrpcServerHandle {
  /** The bound port (the one asked for, or the one chosen for port 0). */
  port: number;
  /**
   * Health turns NOT_SERVING (its watches told and ended), then the server stops taking calls,
   * lets those in flight finish, and stops; forced after `timeoutMs`.
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Calls open at once on one connection by default. RFC 9113 §6.5.2 recommends a limit "no smaller
 * than 100" so as not to limit parallelism; Envoy's edge-proxy best practices set 100; grpc-go's
 * server had 100 until 2017 (grpc-go#1624) and, since the HTTP/2 Rapid Reset attack, its v1.58.3
 * notes ask servers to set one. Without it grpc-js advertises Node's 2^32 − 1, and one connection
 * held as many messages being received (each up to its method's limit: receive-limits.ts) or
 * health watches as its client opened (20,000 watches were accepted on one).
 */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 100;

const statusNames = Object.fromEntries(
  Object.entries(status)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => [v, k]),
) as Record<number, string>;

// The model a call names, for its log line before the handler parses the request.
const requestName = requestField('name');
const requestModelName = requestField('model_name');

/** A zod parse of a decoded message; a refusal is INVALID_INPUT naming the fields. */
function parseMessage<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const result = safeParseWorded(schema, value);
  if (result.success) return result.data;
  const errors = issuesToLocations(result.error.issues);
  throw new NormserveError('INVALID_INPUT', describeLocations(errors, 3), { errors });
}

function versionOf(value: string, field: string): number | undefined {
  if (value === '') return undefined;
  if (!VERSION_NAME_PATTERN.test(value))
    failInput(field, `expected a positive integer, got ${quote(value)}`);
  return Number(value);
}

/**
 * The classes asked for on each requested output: the classification extension's parameter,
 * an int64_param as its gRPC text says (Triton refuses any other kind: "invalid value type for
 * 'classification' parameter, expected int64_param"), checked against the model; undefined where
 * the output's values are asked.
 */
function classifications(
  request: ModelInferRequest,
  served: AvailableVersion,
  names: readonly OutputName[],
): (number | undefined)[] {
  const path = (i: number) => `outputs[${i}].parameters.${CLASSIFICATION_PARAMETER}`;
  const counts = names.map((_, i) => {
    const parameter = request.outputs[i]?.parameters[CLASSIFICATION_PARAMETER];
    if (parameter === undefined) return undefined;
    const parsed = inferParameterSchema.safeParse(parameter);
    const { parameter_choice: kind, int64_param: value } = parsed.success ? parsed.data : {};
    if (kind !== 'int64_param')
      failInput(path(i), 'expected an int64_param: how many classes to return for the output');
    return classificationCount(value, path(i));
  });
  checkClassifications(served, names, counts, path);
  return counts;
}

/** Where a ModelInfer's values are: its raw contents, or its input's typed contents. */
const RAW_CONTENTS = 'raw_input_contents[0]';
const TYPED_CONTENTS = 'inputs[0].contents.fp32_contents';

/** A typed `contents` of an FP32 input: fp32_contents only, `count` finite values. */
function contentsRows(request: ModelInferRequest, rows: number, width: number): RowSource {
  const input = request.inputs[0]!;
  const contents = input.contents;
  const count = rows * width;
  const values = contents?.fp32_contents ?? [];
  if (contents) {
    for (const [key, list] of Object.entries(contents)) {
      if (key !== 'fp32_contents' && (list as unknown[]).length > 0)
        failInput(`inputs[0].contents.${key}`, 'an FP32 input takes fp32_contents only');
    }
  }
  if (values.length !== count) {
    failInput(
      TYPED_CONTENTS,
      `shape [${input.shape.join(', ')}] needs ${count} values, got ${values.length} (or send raw_input_contents)`,
    );
  }
  const data = Float32Array.from(values);
  checkFinite(data, TYPED_CONTENTS);
  return float32Rows(data, rows, width);
}

/**
 * The input rows of a ModelInfer request: raw_input_contents, or typed contents, of a tensor of
 * shape [N, ...input_shape] or [N, features] (both row-major: the same bytes); `rowPath` names a
 * row where its values came from (a row whose outputs overflow), as HTTP names inputs[0].data or
 * inputs[0].binary_data.
 */
function readRows(
  request: ModelInferRequest,
  inputShape: InputShape,
  maxRows: number,
): { source: RowSource; rowPath: (row: number) => string } {
  const rows = checkInputTensor(request.inputs, inputShape, maxRows);
  const width = inputShape.width;
  const raw = request.raw_input_contents;
  if (raw.length === 0)
    return {
      source: contentsRows(request, rows, width),
      rowPath: (r) => `${TYPED_CONTENTS} (row ${r})`,
    };
  if (raw.length !== request.inputs.length) {
    failInput(
      'raw_input_contents',
      `${raw.length} entries for ${request.inputs.length} input tensor(s); give one per input`,
    );
  }
  const contents = request.inputs[0]!.contents;
  if (contents && Object.values(contents).some((list) => (list as unknown[]).length > 0))
    failInput('inputs[0].contents', 'give either contents or raw_input_contents, not both');
  const bytes = raw[0]!;
  const expected = rows * width * FP32_BYTES;
  if (bytes.byteLength !== expected) {
    failInput(
      RAW_CONTENTS,
      `shape [${request.inputs[0]!.shape.join(', ')}] of FP32 is ${expected} bytes, got ${bytes.byteLength}`,
    );
  }
  return {
    source: float32Rows(readFloat32(bytes, RAW_CONTENTS), rows, width),
    rowPath: (r) => `${RAW_CONTENTS} (row ${r})`,
  };
}

/** What is read of a call here (grpc-js exports no name for its ServerSurfaceCall). */
type AnyCall = ServerUnaryCall<unknown, unknown>;

/**
 * A call's CallerSignal: its AbortSignal is made when first read (only by a call that waits for a
 * dynamic batch) and aborts when the call is cancelled — by its client, or by grpc-js at its
 * deadline (a server call's 'cancelled').
 */
function callSignal(call: AnyCall): CallerSignal {
  let controller: AbortController | undefined;
  return {
    get signal() {
      if (controller === undefined) {
        const made = new AbortController();
        controller = made;
        if (call.cancelled) made.abort();
        else call.once('cancelled', () => made.abort());
      }
      return controller.signal;
    },
  };
}

/**
 * The Open Inference Protocol's gRPC service on @grpc/grpc-js. Every handler goes through the
 * service layer the HTTP routes use (the registry, InferenceService and its dynamic batcher, the
 * OIP tensor rules), so a gRPC ModelInfer and a REST infer of the same rows give the same bits.
 * Errors are gRPC statuses mapped from the catalogue (client errors stay client-side codes) with
 * the catalogue code in the `normserve-code` trailer.
 */
export function createGrpcServer(options: GrpcServerOptions): Server {
  const { inference, log } = options;
  const registry = inference.registry;
  const acceptsInfer = compileAccepts(modelInferRequestSchema);
  const checkToken =
    options.apiToken !== undefined ? bearerTokenCheck(options.apiToken, 'prediction') : undefined;
  const inferenceDefinition = inferenceServiceDefinition();
  const healthDefinition = healthServiceDefinition();
  const admission = new CallAdmission({
    // ModelInfer's token, from the call's headers, as HTTP's hook checks it before the body.
    refuse: checkToken
      ? (path, metadata) =>
          path === inferenceDefinition.ModelInfer!.path
            ? checkToken(metadata.get('authorization')[0])
            : undefined
      : undefined,
    receiveTimeoutMs: options.receiveTimeoutMs ?? 0,
  });
  const inferPath = inferenceDefinition.ModelInfer!.path;
  const contentTypes = new ContentTypeCheck();
  const unreadAnswers = new UnreadAnswers();
  const lane = options.computeLane ?? new ComputeLane();

  /**
   * Wraps a handler: errors become statuses. Every call is counted and logged once, by the
   * interceptor (call-recorder.ts), with the status it ended with; this names the call's model
   * there. A call that ended before its answer (cancelled, past its deadline) is sent nothing.
   */
  const unary = <Req, Res>(
    method: string,
    run: (call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
    modelOf: (request: Req) => string = () => '',
    /**
     * Given, the call's work may compute synchronously: it waits for its turn in the lane (one
     * call of a session at a time, each reply sent first). `enter` runs when the call arrives:
     * it may refuse it (throws) and returns what gives back the place it holds while it waits.
     */
    enter?: (call: ServerUnaryCall<Req, Res>) => () => void,
  ): handleUnaryCall<Req, Res> => {
    return (call, callback) => {
      /**
       * Sends the answer. What grpc-js throws while sending it (its encoding of the status) is
       * logged, never thrown: from a compute lane's turn or a promise's callback it would end
       * the process (a status message that encodeURI refused did, before statusMessage).
       */
      const answer: typeof callback = (...args) => {
        try {
          callback(...args);
        } catch (e) {
          log.error({ err: e, grpcMethod: method }, 'grpc answer could not be sent');
        }
      };
      const fail = (e: unknown) => {
        if (!isNormserveError(e)) log.error({ err: e, grpcMethod: method }, 'grpc handler failed');
        // Gone before its answer: a failure (CLIENT_ABORTED when it left while queued) is moot.
        if (call.cancelled) return;
        answer(
          errorStatus(
            isNormserveError(e)
              ? e
              : new NormserveError('INTERNAL', 'internal server error', { cause: e }),
          ),
        );
      };
      const succeed = (value: Res) => {
        if (!call.cancelled) answer(null, value);
      };
      if (call.request instanceof UndecodableRequest) {
        fail(
          new NormserveError(
            'INVALID_INPUT',
            `request: not a well-formed ${method} request message: ${call.request.reason}`,
          ),
        );
        return;
      }
      const record = callRecordOf(call.metadata);
      if (record) {
        const model = modelOf(call.request);
        if (registry.has(model)) record.model = model;
      }
      const start = () => {
        try {
          const result = run(call);
          // A promise: computed elsewhere (a dynamic batch, the engine's workers).
          if (result instanceof Promise) result.then(succeed, fail);
          else succeed(result);
        } catch (e) {
          fail(e);
        }
      };
      if (!enter) {
        start();
        return;
      }
      // Gone already, or its deadline passed (grpc-js's timer ends it DEADLINE_EXCEEDED): nothing
      // to compute (the recorder counts it). A grpc-timeout of 1n was computed and answered, then
      // ended DEADLINE_EXCEEDED (gRPC attacker review of 2026-12-04, finding 6).
      if (call.cancelled || pastDeadline(call)) return;
      let release: () => void;
      try {
        release = enter(call);
      } catch (e) {
        fail(e);
        return;
      }
      // Cancelled while it waits (by its client, its connection gone, its deadline): its place is
      // given back at once, and its turn computes nothing.
      call.once('cancelled', release);
      // One TCP connection, one HTTP/2 session: grpc-js names it by the client's address and port
      // ('unknown' once its socket is gone: such calls share one turn).
      lane.run(call.getPeer(), () => {
        call.removeListener('cancelled', release);
        // Out of the lane before the service takes the call (it may take a place of its own).
        release();
        if (!call.cancelled && !pastDeadline(call)) start();
      });
    };
  };

  const finishInfer = (
    request: ModelInferRequest,
    out: PredictOutput,
    served: AvailableVersion,
    record: CallRecord | undefined,
    rowPath: (row: number) => string,
  ) => {
    checkFiniteOutputs(out, rowPath);
    const names = requestedOutputs(
      served,
      request.outputs.map((o) => o.name),
    );
    const counts = classifications(request, served, names);
    const labels = served.checkpoint.config.labels ?? [];
    const tensors = names.map((name, i) => {
      const count = counts[i];
      const tensor = outputTensor(name, out);
      return count === undefined ? tensor : classifiedTensor(tensor, count, labels);
    });
    const answer = {
      model_name: out.model,
      model_version: String(out.version),
      id: request.id,
      outputs: tensors.map((t) => ({ name: t.name, datatype: t.datatype, shape: t.shape })),
      raw_output_contents: tensors.map(tensorBytes),
    };
    // Observed when the call ends OK (recordCall), as HTTP observes its answered inferences.
    if (record) {
      const { model, version, rows, computeMs } = out;
      record.inference = { model, version, rows, computeMs, fused: true };
    }
    return answer;
  };

  /** The version a ModelReady or ModelMetadata names, in its log line too. */
  const askedVersion = (call: AnyCall, value: string): number | undefined => {
    const version = versionOf(value, 'version');
    const record = callRecordOf(call.metadata);
    if (record && version !== undefined) record.version = version;
    return version;
  };

  const health = new HealthStatus(registry, options.phase);
  const healthHandlers: UntypedServiceImplementation = {
    Check: unary(
      'Check',
      (call) => health.check(parseMessage(healthCheckRequestSchema, call.request).service),
      healthRequestService,
    ),
    Watch: (call: ServerWritableStream<unknown, unknown>) => {
      const record = callRecordOf(call.metadata);
      const service = healthRequestService(call.request);
      if (record && registry.has(service)) record.model = service;
      if (call.request instanceof UndecodableRequest) {
        call.emit('error', {
          code: status.INVALID_ARGUMENT,
          details: statusMessage(
            `request: not a well-formed Watch request message: ${call.request.reason}`,
          ),
        });
        return;
      }
      health.watch(call);
    },
  };

  const handlers: UntypedServiceImplementation = {
    ServerLive: unary('ServerLive', () => ({ live: true })),
    // As /v2/health/ready: not ready from a shutdown signal on, whatever the models.
    ServerReady: unary('ServerReady', () => ({
      ready: serverReadiness(options.phase, registry).ready,
    })),
    ServerMetadata: unary('ServerMetadata', () => ({
      name: 'normserve',
      version: options.version,
      extensions: [...OIP_EXTENSIONS],
    })),
    ModelReady: unary(
      'ModelReady',
      (call) => {
        const ref = parseMessage(modelRefSchema, call.request);
        // OK with ready false for a model or version it does not have, as Triton answers
        // (service/open-inference.ts); a malformed name or version is still INVALID_ARGUMENT.
        return { ready: isModelReady(registry, ref.name, askedVersion(call, ref.version)) };
      },
      requestName,
    ),
    ModelMetadata: unary(
      'ModelMetadata',
      (call) => {
        const ref = parseMessage(modelRefSchema, call.request);
        return oipModelMetadata(registry, ref.name, askedVersion(call, ref.version));
      },
      requestName,
    ),
    ModelInfer: unary(
      'ModelInfer',
      (call) => {
        const request = acceptsInfer?.(call.request)
          ? call.request
          : parseMessage(modelInferRequestSchema, call.request);
        const served = inference.resolve(
          request.model_name,
          versionOf(request.model_version, 'model_version'),
        );
        const record = callRecordOf(call.metadata);
        if (record) record.version = served.version;
        // Output names and classifications are checked before any compute, as the REST route
        // does.
        classifications(
          request,
          served,
          requestedOutputs(
            served,
            request.outputs.length > 0 ? request.outputs.map((o) => o.name) : undefined,
          ),
        );
        const { source, rowPath } = readRows(request, inputShapeOf(served), options.maxBatchSize);
        if (record) record.rows = source.rows;
        const out = inference.infer(served, source, true, false, callSignal(call));
        return out instanceof Promise
          ? out.then((o) => finishInfer(request, o, served, record, rowPath))
          : finishInfer(request, out, served, record, rowPath);
      },
      requestModelName,
      (call) => {
        // (API_TOKEN was checked from its headers, before its message was read: call-admission.ts.)
        // Waiting in the lane is waiting for the engine: the same bound, the same count
        // (MAX_QUEUED_REQUESTS). A call naming no model of the repository never reaches the
        // engine (NOT_FOUND in its turn) and holds no place.
        const model = requestModelName(call.request);
        return registry.has(model) ? inference.hold(model) : () => {};
      },
    ),
  };

  const knownPaths = new Set(
    [inferenceDefinition, healthDefinition].flatMap((d) => Object.values(d).map((m) => m.path)),
  );

  /**
   * The log line and the metric of every call (callRecorder): the fields of HTTP's request line
   * (request_id, trace_id and parent_id, model, version, rows, the status, durationMs). A method
   * no service has is counted as `unknown` (its path, bounded, is in the log line).
   */
  const recordCall = (record: CallRecord, code: status, details: string) => {
    const seconds = (performance.now() - record.startedMs) / 1000;
    const name = statusNames[code] ?? String(code);
    const known = knownPaths.has(record.path);
    const method = known ? record.method : UNKNOWN_METHOD;
    options.observer?.observeGrpc(method, name, record.model, seconds);
    // An answer the client got (not one computed for a client that went: CANCELLED).
    if (record.inference && code === status.OK)
      options.observer?.observeInference(record.inference);
    // Built field by field, in this order: the same line with a conditional spread per field took
    // ~4 µs per call (V8 copies each spread object; bench/README.md, issue 11's twenty-eighth round).
    const line: Record<string, unknown> = {};
    if (record.requestId) line[REQUEST_ID_LOG_FIELD] = record.requestId;
    if (record.traceId) {
      line.trace_id = record.traceId;
      line.parent_id = record.parentId;
    }
    line.grpcMethod = method;
    if (!known) line.path = record.path.slice(0, 200);
    line.code = name;
    line.durationMs = Math.round(seconds * 1e6) / 1000;
    if (record.model) line.model = record.model;
    if (record.version !== undefined) line.version = record.version;
    if (record.rows !== undefined) line.rows = record.rows;
    if (code !== status.OK && details) line.error = details;
    if (code === status.INTERNAL && !CLIENT_CAUSED_INTERNAL.test(details))
      log.error(line, 'grpc request failed');
    else log.info(line, 'grpc request');
  };

  const server = new Server({
    // One interceptor (call-interceptor.ts) runs the five layers, in this order.
    interceptors: [
      callInterceptor([
        // First: it wraps grpc-js's own sendStatus under the recorder's.
        resetUnfinishedRequests(
          () => log.warn({}, 'gRPC: refused requests are not reset (grpc-js internals changed)'),
          unreadAnswers,
        ),
        limitReceiving({
          messageLimit: (path) =>
            path === inferPath
              ? inferMessageLimit(registry, options.maxBatchSize)
              : SMALL_MESSAGE_BYTES,
          unsupported: () =>
            log.warn({}, 'gRPC: per-method message limits not applied (grpc-js internals changed)'),
        }),
        callRecorder(recordCall),
        // After the recorder, so the calls they end are recorded; the content-type first, so a
        // call it refuses never enters the admission's timer or drain.
        contentTypes.layer,
        admission.layer,
      ]),
    ],
    // Bounds what one connection holds: its calls × BODY_LIMIT_BYTES each.
    'grpc.max_concurrent_streams': options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
    // Channelz (grpc-js's per-call and per-session counters for the channelz admin service, which
    // normserve does not serve) was 3.5 % of the serving thread's samples on 256-row ModelInfer.
    'grpc.enable_channelz': 0,
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': -1,
    ...(options.maxConnectionAgeMs
      ? {
          'grpc.max_connection_age_ms': options.maxConnectionAgeMs,
          ...(options.maxConnectionAgeGraceMs
            ? { 'grpc.max_connection_age_grace_ms': options.maxConnectionAgeGraceMs }
            : {}),
        }
      : {}),
    ...(options.keepaliveTimeMs
      ? {
          'grpc.keepalive_time_ms': options.keepaliveTimeMs,
          ...(options.keepaliveTimeoutMs
            ? { 'grpc.keepalive_timeout_ms': options.keepaliveTimeoutMs }
            : {}),
        }
      : {}),
  });
  server.addService(inferenceDefinition, handlers);
  server.addService(healthDefinition, healthHandlers);
  if (!widenStreamWindows(server))
    log.warn({}, 'gRPC: could not widen the HTTP/2 stream windows (grpc-js internals changed)');
  if (!recordUnimplemented(server))
    log.warn({}, 'gRPC: calls to unknown methods go unrecorded (grpc-js internals changed)');
  extras.set(server, {
    health,
    admission,
    contentTypes,
    unreadAnswers,
    maxConnections: options.maxConnections,
    onConnectionDropped: options.onConnectionDropped,
    log,
  });
  return server;
}

/** Whether a call's deadline (grpc-timeout, counted by grpc-js from its arrival) has passed. */
function pastDeadline(call: { getDeadline(): Date | number }): boolean {
  const deadline = call.getDeadline();
  return (deadline instanceof Date ? deadline.getTime() : deadline) <= Date.now();
}

/**
 * The largest ModelInfer message worth reading: MAX_BATCH_SIZE rows of the widest input any
 * served version takes, at INFER_BYTES_PER_VALUE, and the envelope (receive-limits.ts). Anything
 * larger would be refused once decoded (BATCH_TOO_LARGE, a count that does not match); decoding
 * 16 MiB of packed values first held the event loop 1–3 s (gRPC attacker review of 2026-12-04,
 * finding 3). The interceptor caps it at BODY_LIMIT_BYTES.
 */
export function inferMessageLimit(registry: ModelRegistry, maxBatchSize: number): number {
  let widest = 0;
  for (const model of registry.list())
    for (const version of model.versions.values())
      if (version.state === 'AVAILABLE' && version.compiled.inputWidth > widest)
        widest = version.compiled.inputWidth;
  return INFER_ENVELOPE_BYTES + INFER_BYTES_PER_VALUE * maxBatchSize * widest;
}

/**
 * grpc-js reports a failed bind as `No address added out of total 1 resolved errors: [<Node's
 * error messages>]` (server.ts of grpc-js 1.14), the errno code only inside the text: the bind
 * error is Node's message (`bind EADDRINUSE 127.0.0.1:8081` in a cluster worker, `listen
 * EADDRINUSE: address already in use 127.0.0.1:8081` otherwise), its syscall the first word and its
 * code the errno name, given back as Node's error has them. A name that does not resolve is
 * `Name resolution failed for target dns:<host>:<port>`: getaddrinfo's ENOTFOUND, as Node says it
 * for HTTP. Anything else keeps grpc-js's message and gets no code: it is no bind failure.
 */
export function bindError(error: Error): Error & { code?: string; syscall?: string } {
  if (/^Name resolution failed for target /.test(error.message))
    return Object.assign(new Error(error.message), { code: 'ENOTFOUND', syscall: 'getaddrinfo' });
  const inner = /errors: \[(.*)\]\s*$/s.exec(error.message)?.[1] || error.message;
  const node = /^(listen|bind) (E[A-Z]+)\b/.exec(inner);
  if (!node) return new Error(inner);
  return Object.assign(new Error(inner), { code: node[2]!, syscall: node[1]! });
}

/**
 * Binds a server on `host:port` (IPv6 hosts bracketed) and returns its handle; a failed bind
 * rejects with Node's bind error (bindError).
 */
export function listenGrpc(server: Server, host: string, port: number): Promise<GrpcServerHandle> {
  const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) => {
      if (error) {
        reject(bindError(error));
        return;
      }
      widenConnectionWindows(server);
      const extra = extras.get(server);
      const lingering = new LingeringConnections();
      const http2Servers = http2ServersOf(server);
      if (http2Servers === undefined) {
        extra?.log.warn({}, 'gRPC: ended connections not followed (grpc-js internals changed)');
        extra?.log.warn(
          {},
          'gRPC: content-types other than protobuf are read as protobuf (grpc-js internals changed)',
        );
      } else {
        lingering.watch(http2Servers);
        extra?.contentTypes.watch(http2Servers);
      }
      if (
        extra?.maxConnections !== undefined &&
        !limitGrpcConnections(server, extra.maxConnections, extra.onConnectionDropped ?? (() => {}))
      )
        extra.log.warn({}, 'gRPC: MAX_CONNECTIONS not applied (grpc-js internals changed)');
      resolve({
        port: bound,
        close: (timeoutMs) =>
          new Promise<void>((done) => {
            // NOT_SERVING first: probes and load balancers see the drain, and open watches end.
            extra?.health.drain();
            // A request still arriving gets half the drain to finish, so that a client which
            // never finishes one cannot hold the drain to its end (the process would exit 1 then):
            // the other half is left for the calls it lets in to be computed and answered.
            extra?.admission.drain(Math.floor(timeoutMs / 2));
            // An answer its client has not read by then is cancelled, and a connection whose
            // session has ended but whose client has not closed it is destroyed: the server's work
            // on them is done, and the drain ends without being forced (UnreadAnswers,
            // LingeringConnections).
            const unread = setTimeout(() => {
              const cancelled = extra?.unreadAnswers.cancelUnread() ?? 0;
              if (cancelled > 0)
                extra?.log.warn(
                  { calls: cancelled },
                  'gRPC: answers their clients had not yet read were cancelled to end the drain',
                );
              const destroyed = lingering.destroyEnded();
              if (destroyed > 0)
                extra?.log.warn(
                  { connections: destroyed },
                  'gRPC: connections their clients had not closed after their last call were destroyed to end the drain',
                );
            }, drainLastStepsMs(timeoutMs));
            const force = setTimeout(() => {
              server.forceShutdown();
              done();
            }, timeoutMs);
            server.tryShutdown(() => {
              clearTimeout(force);
              clearTimeout(unread);
              done();
            });
          }),
      });
    });
  });
}
