import type { IncomingMessage } from 'node:http';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorCatalogue, NormserveError } from '../errors/index.js';
import {
  DriftService,
  InferenceService,
  type Log,
  type ModelRegistry,
  RecalibrationService,
  type ServerConfig,
  ServingPhase,
} from '../service/index.js';
import type { AppDeps, AppInstance } from './app-types.js';
import { OCTET_STREAM } from './binary-infer.js';
import { trackCallers } from './callers.js';
import { abortReply, linkReply, replyOf, replySignal } from './client-gone.js';
import { drainableConnections, IDLE_LINGER_MS, type ListenerHandover } from './connection-drain.js';
import {
  clientErrorHandler,
  httpServerOptions,
  limitConnections,
  RECEIVE_TIMED_OUT,
  requestTimedOut,
} from './connection-limits.js';
import { decodeContentEncoding } from './content-encoding.js';
import { routeUnmetExpectations, unmetExpectation } from './expectations.js';
import { JSON_BODY_TYPES, parseJsonBytes } from './json-body.js';
import { JSON_TYPE } from './json-responses.js';
import type { ServiceMetrics } from './metrics.js';
import { notFoundHandler } from './not-found.js';
import { openApiPath, registerOpenApi } from './openapi.js';
import { errorHandler } from './problem.js';
import { routeGuards } from './route-access.js';
import { adminRoutes } from './routes/admin.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { driftRoutes } from './routes/drift.js';
import { healthRoutes } from './routes/health.js';
import { indexRoutes } from './routes/index.js';
import { modelExportRoutes } from './routes/model-export.js';
import { openInferenceRoutes } from './routes/open-inference.js';
import { tfServingRoutes } from './routes/tf-serving.js';
import { strictQuery } from './strict-query.js';
import { childLoggerWithTrace, REQUEST_ID_LOG_FIELD, requestIdOf } from './tracing.js';
import { serializerCompiler, validatorCompiler } from './validation.js';

export interface BuildAppOptions
  extends Omit<AppDeps, 'inference' | 'drift' | 'recalibration' | 'phase'> {
  logger: FastifyBaseLogger;
  /** The process's serving phase (cli/server-worker.ts moves it); a new one (serving) when absent. */
  phase?: ServingPhase;
  /** The inference service to share (with a gRPC server); made from the config when absent. */
  inference?: InferenceService;
  /** Its drift service (the one given to createInferenceService); made when absent. */
  drift?: DriftService;
  /** Its recalibration service (createRecalibrationService with that drift service); made when absent. */
  recalibration?: RecalibrationService;
  /**
   * Build the OpenAPI document's text when the app is ready (a server: before it listens), so no
   * request holds the event loop for it; otherwise (test apps, `npm run openapi`) the first
   * GET /openapi.json builds it. Default false.
   */
  openApiAtStart?: boolean;
  /**
   * How the shutdown's drain stops listening without resetting connections queued on the
   * listening socket: with WORKERS > 1, the cluster primary takes the socket over from the last
   * worker to listen (cli/cluster-listener.ts). Default: the server simply stops listening.
   */
  listenerHandover?: ListenerHandover;
}

/** The drift service configured from DRIFT_* and AUTO_RECALIBRATE, counting its actions. */
export function createDriftService(
  config: ServerConfig,
  registry: ModelRegistry,
  metrics: ServiceMetrics,
  log: Log,
  /** WORKERS > 1: one of several processes (shares its statistics; decides when told). */
  cluster = false,
): DriftService {
  const drift = new DriftService({
    ...(cluster ? { share: true, decides: false } : {}),
    sampleFraction: config.DRIFT_SAMPLE_FRACTION,
    windowMs: config.DRIFT_WINDOW_MS,
    windows: config.DRIFT_WINDOWS,
    threshold: config.DRIFT_THRESHOLD,
    minRows: config.DRIFT_MIN_ROWS,
    autoRecalibrate: config.AUTO_RECALIBRATE,
    autoMinRows: config.AUTO_RECALIBRATE_MIN_ROWS,
    outlierBound: config.AUTO_RECALIBRATE_OUTLIER_BOUND,
    sampleRows: config.TRAFFIC_SAMPLE_ROWS,
    sampleBytes: config.TRAFFIC_SAMPLE_BYTES,
    log,
    onAction: (model, action, outcome) =>
      metrics.autoRecalibrations.inc({ model, action, outcome }),
    onOutlierRows: (model, rows) => metrics.autoOutlierRows.inc({ model }, rows),
  });
  drift.useRegistry(registry);
  metrics.observeDrift(drift);
  return drift;
}

/**
 * The recalibration use case configured from MAX_RECALIBRATION_SAMPLES, RECALIBRATION_MEMORY_BYTES,
 * RECALIBRATION_ASYNC_ROWS and ENGINE, counting its outcomes; AUTO_RECALIBRATE (`drift`) publishes
 * through it, so automatic and requested recalibrations share its lock and jobs.
 */
export function createRecalibrationService(
  config: ServerConfig,
  registry: ModelRegistry,
  metrics: ServiceMetrics,
  log: Log,
  drift: DriftService,
): RecalibrationService {
  const recalibration = RecalibrationService.forRepository(registry, {
    maxSamples: config.MAX_RECALIBRATION_SAMPLES,
    rowMemoryBytes: config.RECALIBRATION_MEMORY_BYTES,
    asyncRows: config.RECALIBRATION_ASYNC_ROWS,
    engine: config.ENGINE,
    log,
    onOutcome: (model, mode, outcome) => metrics.recalibrations.inc({ model, mode, outcome }),
  });
  drift.useRecalibration(recalibration);
  return recalibration;
}

/**
 * The inference use case configured from BATCH_*, ENGINE_ASYNC and MAX_QUEUED_REQUESTS, reporting
 * batches and refusals to the metrics.
 */
export function createInferenceService(
  config: ServerConfig,
  registry: ModelRegistry,
  metrics: ServiceMetrics,
  drift?: DriftService,
): InferenceService {
  return new InferenceService(registry, {
    batchMaxDelayUs: config.BATCH_MAX_DELAY_US,
    batchMaxRows: config.BATCH_MAX_ROWS,
    engineAsync: config.ENGINE_ASYNC === 'on',
    onBatch: (report) => metrics.observeBatch(report),
    observer: drift,
    maxQueuedRequests: config.MAX_QUEUED_REQUESTS,
    onOverload: (model) => metrics.overloaded.inc({ model }),
  });
}

/**
 * The zod compilers as Fastify's compiler factories. Fastify types the factories after ajv's
 * (a route definition whose schema is any JSON schema); every schema here is a zod schema, which
 * is what the compilers themselves declare.
 */
const zodCompilers = {
  buildValidator: () => validatorCompiler,
  buildSerializer: () => serializerCompiler,
} as unknown as NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>;

/**
 * Whether a request has body bytes the server has not read. `complete` alone is not the test: a
 * request without a body (a GET answered synchronously, such as a 404 or 405) is not complete
 * until the parser returns from its handler, and closing its connection would cost a keep-alive
 * client a new connection per wrong URL. A request has a body when it declares Transfer-Encoding
 * or a non-zero Content-Length (RFC 9112 §6.3).
 */
function bodyLeftUnread(raw: IncomingMessage): boolean {
  if (raw.complete) return false;
  const { headers } = raw;
  return (
    headers['transfer-encoding'] !== undefined ||
    (headers['content-length'] !== undefined && headers['content-length'] !== '0')
  );
}

/**
 * The Retry-After of SHUTTING_DOWN, in seconds. This instance will not come back, but the URL, a
 * Service in front of several, will: RFC 9110 §10.2.3's "how long the user agent ought to wait
 * before making a follow-up request". One second lets the endpoint list drop this instance (its
 * listener is closing; a new connection to it is refused) so that the retry reaches another one;
 * Retry-After-aware retry libraries (urllib3's Retry, for one) otherwise use their own backoff.
 */
const SHUTTING_DOWN_RETRY_AFTER_SECONDS = 1;

/** The status of CLIENT_ABORTED (nginx's 499), under which aborted requests are counted. */
const CLIENT_CLOSED = errorCatalogue.CLIENT_ABORTED.status;
/** The status of REQUEST_TIMEOUT, under which requests cut at REQUEST_TIMEOUT_MS are counted. */
const TIMED_OUT = errorCatalogue.REQUEST_TIMEOUT.status;

const routeLabels = new Map<string, string>();
/** `/v1/models/:name(^…)::predict` → `/v1/models/{name}:predict`, for logs and metric labels. */
function routeLabel(pattern: string): string {
  let label = routeLabels.get(pattern);
  if (label === undefined) {
    label = openApiPath(pattern);
    routeLabels.set(pattern, label);
  }
  return label;
}

/**
 * Builds the Fastify app (never listens: cli/server.ts does, tests use app.inject). Every input is
 * validated by zod before it reaches the engine; every error leaves as application/problem+json.
 */
export async function buildApp(options: BuildAppOptions): Promise<AppInstance> {
  const {
    logger,
    inference: given,
    drift: givenDrift,
    recalibration: givenRecalibration,
    listenerHandover,
    phase,
    ...rest
  } = options;
  if ((given || givenRecalibration) && !givenDrift)
    throw new Error('buildApp: pass the drift service the other services were made with');
  const drift = givenDrift ?? createDriftService(rest.config, rest.registry, rest.metrics, logger);
  const deps: AppDeps = {
    ...rest,
    phase: phase ?? new ServingPhase(),
    drift,
    inference: given ?? createInferenceService(rest.config, rest.registry, rest.metrics, drift),
    recalibration:
      givenRecalibration ??
      createRecalibrationService(rest.config, rest.registry, rest.metrics, logger, drift),
  };
  const httpTimeouts = httpServerOptions(deps.config);
  const app = Fastify({
    loggerInstance: logger,
    // One log line per request, written by the onResponse hook below, instead of Fastify's two.
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: REQUEST_ID_LOG_FIELD,
    }),
    bodyLimit: deps.config.BODY_LIMIT_BYTES,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    // Requests arriving on open connections during shutdown get a SHUTTING_DOWN problem (below)
    // instead of Fastify's plain 503.
    return503OnClosing: false,
    requestTimeout: httpTimeouts.requestTimeout,
    http: httpTimeouts,
    clientErrorHandler: clientErrorHandler(logger),
    genReqId: requestIdOf,
    // The request's log lines carry its request id and, when given, its W3C trace.
    childLoggerFactory: childLoggerWithTrace,
    routerOptions: { maxParamLength: 256 },
    // Every route validates and serialises with the zod compilers below; naming them here also
    // keeps Fastify from loading its default ones (ajv, fast-json-stringify), which no route
    // would use and which cost a worker a large share of its start-up (issue 13).
    schemaController: { compilersFactory: zodCompilers },
    // Router errors (malformed percent-encoding, over-long parameters) leave as problems too.
    frameworkErrors: (error, request, reply) => {
      errorHandler(error, request, reply);
    },
  }).withTypeProvider<ZodTypeProvider>();
  limitConnections(app.server, deps.config.MAX_CONNECTIONS, deps.metrics);
  routeUnmetExpectations(app.server);
  app.decorate('deps', deps);
  app.decorateRequest('inference', undefined);
  app.decorateRequest('modelName', undefined);
  app.decorateRequest('servedVersion', undefined);
  app.decorateRequest('receivedAt', 0);
  app.decorateRequest('clientGone', false);
  app.decorateRequest('lineLevel', 'info');
  app.decorateReply('signal', { getter: replySignal });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler(app));
  // JSON only where JSON is declared: drop Fastify's text/plain parser so other types get 415.
  app.removeContentTypeParser('text/plain');
  // Fastify's JSON parser, with the position of a syntax error in the problem (json-body.ts), for
  // application/json and curl's -d type (JSON_BODY_TYPES); read as bytes, so that bytes that are
  // no UTF-8 are refused rather than replaced.
  app.removeContentTypeParser('application/json');
  for (const type of JSON_BODY_TYPES)
    app.addContentTypeParser(type, { parseAs: 'buffer' }, parseJsonBytes);

  // Bodies sent with Content-Encoding gzip or deflate are read decoded, by every parser.
  app.addHook('preParsing', decodeContentEncoding);

  // Settles jobs abandoned by dead processes and deletes expired records, now and hourly.
  await deps.recalibration.startSweeping();
  // Before the app reports closed: automatic recalibrations and shadow runs in progress finish
  // (or fail), then so do the recalibrations being computed, whose job records reach the disk
  // (the routes that start them are closed by now; automatic ones only start through drift).
  app.addHook('onClose', async () => {
    await drift.drain();
    await deps.recalibration.close();
  });
  let closing = false;
  const connections = drainableConnections(app.server, IDLE_LINGER_MS, listenerHandover);
  app.addHook('preClose', async () => {
    closing = true;
    deps.phase.enter('draining');
    // Requests waiting for a dynamic batch run now rather than at the end of their delay.
    deps.inference.flush();
    // No new connections; every request already sent on an open one is read and answered
    // (SHUTTING_DOWN, below, when it arrives now) before its connection closes.
    await connections.drain();
  });
  // The per-request hooks are synchronous (no promise per hook and request).
  app.addHook('onRequest', (request, reply, done) => {
    request.receivedAt = performance.now();
    linkReply(reply);
    if (!closing) return done(unmetExpectation(request.raw));
    void reply.header('Connection', 'close');
    const refuse = () =>
      done(
        new NormserveError(
          'SHUTTING_DOWN',
          'the server is shutting down; retry on another instance',
          { retryAfterSeconds: SHUTTING_DOWN_RETRY_AFTER_SECONDS },
        ),
      );
    // Answered once the server has stopped listening: its client's next connection is then
    // refused, not queued on a socket about to close (connection-drain.ts, ACCEPT_QUIET_MS).
    const stopping = connections.listenerClosing;
    if (stopping) void stopping.then(refuse);
    else refuse();
  });

  const { metrics } = deps;
  metrics.observeRegistry(deps.registry);
  const scrapeMetrics = deps.scrapeMetrics ?? (() => metrics.registry.metrics());
  app.addHook('onSend', (request, reply, payload, done) => {
    void reply.header('X-Request-Id', request.id);
    // During shutdown, close each connection after its response: a kept-alive idle connection
    // would otherwise hold server.close() (and the process) until the keep-alive timeout. So too
    // a response sent before its request's body was read whole (an upload refused at its line 2,
    // a body over its limit): the unread rest would hold the connection open, and a shutdown
    // with it (Node closes the socket once a `Connection: close` response is written).
    // In the lame-duck phase too (SHUTDOWN_DELAY_MS), as Go's Server.Shutdown and Envoy's drain
    // do: a kept-alive client's next request opens a new connection, which the Service sends to
    // another pod once the endpoints are updated, instead of meeting the drain's 503 here.
    if (closing || !deps.phase.acceptingTraffic || bodyLeftUnread(request.raw))
      void reply.header('Connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (request, reply, done) => {
    // Recorded already, as 499, when its client left (recordClientGone).
    if (request.clientGone) return done();
    // routeOptions is a getter that builds an object: read once.
    const url = request.routeOptions.url;
    const route = url ? routeLabel(url) : 'unmatched';
    const inference = request.inference;
    // Read once: each read of elapsedTime takes the clock again.
    const elapsedMs = reply.elapsedTime;
    const durationMs = Math.round(elapsedMs * 1000) / 1000;
    const seconds = elapsedMs / 1000;
    const servedVersion = inference?.version ?? request.servedVersion;
    const version = servedVersion === undefined ? '' : String(servedVersion);
    metrics.observeRequest(
      request.method,
      route,
      String(reply.statusCode),
      inference?.model ?? request.modelName ?? '',
      version,
      seconds,
    );
    if (inference) {
      metrics.observeInference(
        inference.model,
        version,
        inference.fused ? 'true' : 'false',
        inference.computeMs / 1000,
        inference.rows,
      );
      request.log[request.lineLevel](
        {
          method: request.method,
          url: request.url,
          route,
          status: reply.statusCode,
          durationMs,
          model: inference.model,
          version: inference.version,
          rows: inference.rows,
          computeMs: Math.round(inference.computeMs * 1000) / 1000,
          ...(inference.batchRows !== inference.rows || inference.queueMs > 0
            ? {
                batchRows: inference.batchRows,
                queueMs: Math.round(inference.queueMs * 1000) / 1000,
              }
            : {}),
        },
        'request',
      );
    } else {
      request.log[request.lineLevel](
        {
          method: request.method,
          url: request.url,
          route,
          status: reply.statusCode,
          durationMs,
          ...(request.modelName ? { model: request.modelName } : {}),
          ...(servedVersion !== undefined ? { version: servedVersion } : {}),
        },
        'request',
      );
    }
    done();
  });
  /**
   * A client that goes before its response was sent whole gets none, and Fastify calls no
   * onResponse for it: recorded once as nginx's 499 (CLIENT_ABORTED), at info, never as a server
   * error nor with the status it would have had. Before its request arrived whole (Fastify's
   * onRequestAbort), or after (trackCallers: its response closed unfinished — it may have been
   * waiting for a batch, which it leaves, or computing, which finishes unsent). A request the
   * server cut at REQUEST_TIMEOUT_MS also ends here: it got its 408 and is recorded as one.
   */
  const recordClientGone = (request: FastifyRequest): void => {
    if (request.clientGone) return;
    request.clientGone = true;
    const route = request.routeOptions.url ? routeLabel(request.routeOptions.url) : 'unmatched';
    const seconds = (performance.now() - request.receivedAt) / 1000;
    const model = request.inference?.model ?? request.modelName ?? '';
    const servedVersion = request.inference?.version ?? request.servedVersion;
    const version = servedVersion === undefined ? '' : String(servedVersion);
    // The timeout cuts the connection, so only the request still arriving on it got the 408; one
    // received whole before it (queued for a batch, pipelined) just lost its client.
    const timedOut = !request.raw.complete && requestTimedOut(request.raw.socket);
    const status = timedOut ? TIMED_OUT : CLIENT_CLOSED;
    metrics.observeRequest(request.method, route, String(status), model, version, seconds);
    request.log.info(
      {
        method: request.method,
        url: request.url,
        route,
        status,
        durationMs: Math.round(seconds * 1e6) / 1000,
        ...(model ? { model } : {}),
        ...(servedVersion !== undefined ? { version: servedVersion } : {}),
      },
      timedOut ? RECEIVE_TIMED_OUT : 'request aborted by the client',
    );
  };
  app.addHook('onRequestAbort', (request, done) => {
    recordClientGone(request);
    done();
  });
  trackCallers(app.server, deps.inference, (response) => {
    const reply = replyOf(response);
    // Not routed (nothing to record), or still arriving: onRequestAbort's.
    if (reply === undefined || !reply.request.raw.complete) return;
    recordClientGone(reply.request);
    abortReply(reply);
  });

  // Each route's declared access (config.access) decides which token it demands.
  app.addHook('onRoute', routeGuards({ admin: deps.adminToken, api: deps.config.API_TOKEN }));
  // Every documented route refuses a query parameter it does not read (strict-query.ts).
  app.addHook('onRoute', strictQuery);

  const openApiText = await registerOpenApi(app, options.openApiAtStart ?? false);
  await indexRoutes(app);
  await healthRoutes(app);
  // The prediction routes also read binary bodies (the TF-style float32 rows and the Open
  // Inference Protocol's binary tensor extension); their own scope keeps that parser away from
  // every other route, which stay JSON only.
  await app.register(async (scope: AppInstance) => {
    scope.addContentTypeParser(
      OCTET_STREAM,
      { parseAs: 'buffer', bodyLimit: deps.config.BODY_LIMIT_BYTES },
      (_request, body, done) => done(null, body),
    );
    await tfServingRoutes(scope);
    await openInferenceRoutes(scope);
  });
  await modelExportRoutes(app);
  await driftRoutes(app);
  await dashboardRoutes(app);
  await adminRoutes(app);

  app.get(
    '/metrics',
    {
      config: { access: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format)',
        description:
          'Public even with API_TOKEN set, as Prometheus scrapes it: its drift gauges (model and per-layer scores, rows counted) are aggregates of the prediction traffic, never a row or a histogram; restrict /metrics at the ingress if even those are too much.',
        produces: ['text/plain'],
      },
    },
    async (_request, reply) => reply.type(metrics.registry.contentType).send(await scrapeMetrics()),
  );
  app.get(
    '/openapi.json',
    {
      config: { access: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'This OpenAPI 3.1 document',
        response: {
          200: z.record(z.string(), z.unknown()).meta({
            examples: [
              { openapi: '3.1.0', info: { title: 'normserve', version: '0.1.0' }, paths: {} },
            ],
          }),
        },
      },
    },
    // Text built once (registerOpenApi); the reply's type is FastifyReply's, since the
    // schema's types describe the document, not the text it is sent as.
    async (_request: FastifyRequest, reply: FastifyReply) =>
      reply.type(JSON_TYPE).send(openApiText()),
  );
  return app;
}
