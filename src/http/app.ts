import Fastify, { type FastifyBaseLogger, type FastifyRequest, LogController } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorCatalogue, NormserveError } from '../errors/index.js';
import type { AppDeps, AppInstance } from './app-types.js';
import { clientErrorHandler, httpServerOptions, limitConnections } from './connection-limits.js';
import { openApiPath, registerOpenApi } from './openapi.js';
import { errorHandler, sendProblem } from './problem.js';
import { routeGuards } from './route-access.js';
import { adminRoutes } from './routes/admin.js';
import { healthRoutes } from './routes/health.js';
import { modelExportRoutes } from './routes/model-export.js';
import { openInferenceRoutes } from './routes/open-inference.js';
import { tfServingRoutes } from './routes/tf-serving.js';
import { childLoggerWithTrace, REQUEST_ID_LOG_FIELD, requestIdOf } from './tracing.js';
import { serializerCompiler, validatorCompiler } from './validation.js';

export interface BuildAppOptions extends AppDeps {
  logger: FastifyBaseLogger;
}

/** The status of CLIENT_ABORTED (nginx's 499), under which aborted requests are counted. */
const CLIENT_CLOSED = errorCatalogue.CLIENT_ABORTED.status;

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
  const { logger, ...deps } = options;
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
    // Router errors (malformed percent-encoding, over-long parameters) leave as problems too.
    frameworkErrors: (error, request, reply) => {
      errorHandler(error, request, reply);
    },
  }).withTypeProvider<ZodTypeProvider>();
  limitConnections(app.server, deps.config.MAX_CONNECTIONS, deps.metrics);
  app.decorate('deps', deps);
  app.decorateRequest('inference', undefined);
  app.decorateRequest('modelName', undefined);
  app.decorateRequest('receivedAt', 0);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      request,
      new NormserveError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
  // JSON only where JSON is declared: drop Fastify's text/plain parser so other types get 415.
  app.removeContentTypeParser('text/plain');
  // Except the type curl sends for `-d @file` without -H: TF Serving's documented examples post
  // JSON that way, so it is read as JSON (and must parse as JSON, with the same protections).
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request, reply) => {
    request.receivedAt = performance.now();
    if (closing) {
      void reply.header('Connection', 'close');
      throw new NormserveError(
        'SHUTTING_DOWN',
        'the server is shutting down; retry on another instance',
      );
    }
  });

  const { metrics } = deps;
  metrics.observeRegistry(deps.registry);
  const scrapeMetrics = deps.scrapeMetrics ?? (() => metrics.registry.metrics());
  app.addHook('onSend', async (request, reply, payload) => {
    void reply.header('X-Request-Id', request.id);
    // During shutdown, close each connection after its response: a kept-alive idle connection
    // would otherwise hold server.close() (and the process) until the keep-alive timeout.
    if (closing) void reply.header('Connection', 'close');
    return payload;
  });
  /** The one log line and the metrics of a request, answered (onResponse) or not (aborted). */
  const record = (request: FastifyRequest, statusCode: number, seconds: number): void => {
    const route = request.routeOptions.url ? routeLabel(request.routeOptions.url) : 'unmatched';
    const status = String(statusCode);
    const inference = request.inference;
    metrics.requests.inc({
      method: request.method,
      route,
      status,
      model: inference?.model ?? request.modelName ?? '',
      version: inference ? String(inference.version) : '',
    });
    metrics.requestDuration.observe({ method: request.method, route, status }, seconds);
    if (inference) {
      metrics.inferenceDuration.observe(
        {
          model: inference.model,
          version: String(inference.version),
          fused: String(inference.fused),
        },
        inference.computeMs / 1000,
      );
      metrics.batchSize.observe({ model: inference.model }, inference.rows);
    }
    request.log.info(
      {
        method: request.method,
        url: request.url,
        route,
        status: statusCode,
        durationMs: Math.round(seconds * 1e6) / 1000,
        ...(inference
          ? {
              model: inference.model,
              version: inference.version,
              rows: inference.rows,
              computeMs: Math.round(inference.computeMs * 1000) / 1000,
            }
          : request.modelName
            ? { model: request.modelName }
            : {}),
      },
      statusCode === CLIENT_CLOSED ? 'request aborted by the client' : 'request',
    );
  };
  app.addHook('onResponse', async (request, reply) => {
    record(request, reply.statusCode, reply.elapsedTime / 1000);
  });
  // A client that closes the connection before its request has arrived gets no response (and
  // no onResponse): recorded as nginx's 499, never as a server error.
  app.addHook('onRequestAbort', async (request) => {
    record(request, CLIENT_CLOSED, (performance.now() - request.receivedAt) / 1000);
  });

  // Each route's declared access (config.access) decides which token it demands.
  app.addHook('onRoute', routeGuards({ admin: deps.adminToken, api: deps.config.API_TOKEN }));

  await registerOpenApi(app);
  await healthRoutes(app);
  await tfServingRoutes(app);
  await openInferenceRoutes(app);
  await modelExportRoutes(app);
  await adminRoutes(app);

  app.get(
    '/metrics',
    {
      config: { access: 'public' },
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format)',
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
    async () => app.swagger() as unknown as Record<string, unknown>,
  );
  return app;
}
