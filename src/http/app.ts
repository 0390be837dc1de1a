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
import { NormserveError } from '../errors/index.js';
import { SHUTTING_DOWN_RETRY_AFTER_SECONDS } from '../service/index.js';
import { JSON_BODY_TYPES } from './accepted-types.js';
import type { AppDeps, AppInstance } from './app-types.js';
import { OCTET_STREAM } from './binary-infer.js';
import { BodyBudget } from './body-budget.js';
import { answerBuilt, behindConnectionEnd, closesConnection, trackCallers } from './callers.js';
import { abortReply, linkReply, replyOf, replySignal } from './client-gone.js';
import { drainableConnections, IDLE_LINGER_MS, type ListenerHandover } from './connection-drain.js';
import {
  clientErrorHandler,
  httpServerOptions,
  limitConnections,
  refuseConnect,
} from './connection-limits.js';
import { decodeBeforeBody, decodeNotFound } from './content-encoding.js';
import {
  continueBeforeBody,
  continueNotFound,
  routeUnmetExpectations,
  unmetExpectation,
} from './expectations.js';
import { parseJsonBytes } from './json-body.js';
import { JSON_TYPE } from './json-responses.js';
import { notFoundHandler } from './not-found.js';
import { registerOpenApi } from './openapi.js';
import { errorHandler, logIfFault } from './problem.js';
import { requestLog } from './request-log.js';
import { malformedTarget } from './request-target.js';
import { routeGuards } from './route-access.js';
import { RoutePatterns } from './route-patterns.js';
import { adminRoutes } from './routes/admin.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { driftRoutes } from './routes/drift.js';
import { healthRoutes } from './routes/health.js';
import { indexRoutes } from './routes/index.js';
import { modelExportRoutes } from './routes/model-export.js';
import { openInferenceRoutes } from './routes/open-inference.js';
import { tfServingRoutes } from './routes/tf-serving.js';
import { problemSchema } from './schemas/common.js';
import { strictQuery } from './strict-query.js';
import {
  childLoggerWithTrace,
  REQUEST_ID_LOG_FIELD,
  requestIdOf,
  sendRequestId,
} from './tracing.js';
import { serializerCompiler, validatorCompiler } from './validation.js';

export interface BuildAppOptions extends AppDeps {
  logger: FastifyBaseLogger;
  /**
   * How the shutdown's drain stops listening without resetting connections queued on the
   * listening socket: with WORKERS > 1, the cluster primary takes the socket over from the last
   * worker to listen (cli/cluster-listener.ts). Default: the server simply stops listening.
   */
  listenerHandover?: ListenerHandover;
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
 * Builds the Fastify app (never listens: cli/server.ts does, tests use app.inject). Every input is
 * validated by zod before it reaches the engine; every error leaves as a problem document
 * (problem-media-type.ts says in which media type).
 */
export async function buildApp(options: BuildAppOptions): Promise<AppInstance> {
  const { logger, listenerHandover, ...deps } = options;
  const httpTimeouts = httpServerOptions(deps.config);
  // One log line and the request metrics per request; its 499/408 when its client left, or its
  // line as discarded when it came behind a response that closed its connection.
  const { onResponse, recordUnanswered } = requestLog(deps.metrics);
  // Every route's pattern, for the label of a 405 (not-found.ts) and the media type of the error
  // of a request no route took (problem-media-type.ts).
  const routePatterns = new RoutePatterns();
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
    clientErrorHandler: clientErrorHandler(logger, deps.metrics),
    genReqId: requestIdOf,
    // The request's log lines carry its request id and, when given, its W3C trace.
    childLoggerFactory: childLoggerWithTrace,
    routerOptions: { maxParamLength: 256 },
    // Every route validates and serialises with the zod compilers below; naming them here also
    // keeps Fastify from loading its default ones (ajv, fast-json-stringify), which no route
    // would use and which cost a worker a large share of its start-up (issue 13).
    schemaController: { compilersFactory: zodCompilers },
    // Router errors (malformed percent-encoding, over-long parameters) leave as problems too.
    // Fastify runs no hook for them (their context has none): the id is set here as onSend sets
    // it (tracing.ts), and the request's log line and metrics are written once the response is,
    // as onResponse writes them for every routed request.
    frameworkErrors: (error, request, reply) => {
      request.receivedAt = performance.now();
      sendRequestId(request, reply);
      reply.raw.once('finish', () => onResponse(request, reply, () => {}));
      // No onSend hook runs here: the lame duck's and drain's close is decided as onSend does.
      if (decideClose(request.raw)) void reply.header('Connection', 'close');
      errorHandler(error, request, reply);
    },
  }).withTypeProvider<ZodTypeProvider>();
  limitConnections(app.server, deps.config.MAX_CONNECTIONS, deps.metrics);
  refuseConnect(app.server, logger, deps.metrics);
  routeUnmetExpectations(app.server);
  app.decorate('deps', deps);
  app.decorateRequest('inference', undefined);
  app.decorateRequest('modelName', undefined);
  app.decorateRequest('servedVersion', undefined);
  app.decorateRequest('allowedRoute', undefined);
  app.decorate('routePatterns', routePatterns);
  app.decorateRequest('problemCode', undefined);
  app.decorateRequest('receivedAt', 0);
  app.decorateRequest('readingBody', false);
  app.decorateRequest('unanswered', false);
  app.decorateRequest('lineLevel', 'info');
  app.decorateRequest('onReceiveTimeout', undefined);
  app.decorateReply('signal', { getter: replySignal });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const notFound = notFoundHandler(app, routePatterns);
  // A path no route serves is that 404 or 405 whatever its body: malformed JSON, a type no route
  // reads or a body over a limit sent to DELETE :recalibrate or PUT /v1/nothing answered 400, 415
  // or 413 (the recalibration attacker of 2026-12-04). The body is still read or refused as
  // before; only the answer is the path's. Errors before the body (the request's target) stay.
  app.setErrorHandler((error, request, reply) => {
    if (!(request.is404 && request.readingBody && !reply.sent))
      return errorHandler(error as Error, request, reply);
    logIfFault(error as Error, request);
    return notFound(request, reply);
  });
  app.addHook('onRoute', routePatterns.record);
  app.setNotFoundHandler(notFound);
  // JSON only where JSON is declared: drop Fastify's text/plain parser so other types get 415.
  app.removeContentTypeParser('text/plain');
  // Fastify's JSON parser, with the position of a syntax error in the problem (json-body.ts), for
  // application/json and curl's -d type (JSON_BODY_TYPES); read as bytes, so that bytes that are
  // no UTF-8 are refused rather than replaced.
  app.removeContentTypeParser('application/json');
  for (const type of JSON_BODY_TYPES)
    app.addContentTypeParser(type, { parseAs: 'buffer' }, parseJsonBytes);

  // From here on an error is the body's (the error handler above).
  app.addHook('preParsing', (request, _reply, payload, done) => {
    request.readingBody = true;
    done(null, payload);
  });
  // Bodies sent with Content-Encoding gzip or deflate are read decoded, by every parser: a
  // route's after its guards (decodeBeforeBody, below), a path no route serves here.
  app.addHook('preParsing', decodeNotFound);
  // The not-found handler's 100 Continue (a route's is its last preParsing hook: below).
  app.addHook('preParsing', continueNotFound);

  // Settles jobs abandoned by dead processes and deletes expired records, now and hourly.
  await deps.recalibration.startSweeping();
  // Before the app reports closed: automatic recalibrations and shadow runs in progress finish
  // (or fail), then so do the recalibrations being computed, whose job records reach the disk
  // (the routes that start them are closed by now; automatic ones only start through drift).
  app.addHook('onClose', async () => {
    await deps.drift.drain();
    await deps.recalibration.close();
  });
  let closing = false;
  function decideClose(raw: IncomingMessage): boolean {
    const closeAfter =
      bodyLeftUnread(raw) || ((closing || !deps.phase.acceptingTraffic) && closesConnection(raw));
    answerBuilt(raw);
    return closeAfter;
  }
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
    // Behind a response already written as its connection's last: not processed (RFC 9112
    // §9.6; a pipelined DELETE or :recalibrate would have had its effect unseen), and never
    // answered: recorded as discarded when the connection closes (trackCallers, below).
    if (behindConnectionEnd(request.raw)) {
      reply.hijack();
      return done();
    }
    if (!closing) return done(unmetExpectation(request.raw) ?? malformedTarget(request.raw));
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
    sendRequestId(request, reply);
    // During shutdown, close each connection after its response: a kept-alive idle connection
    // would otherwise hold server.close() (and the process) until the keep-alive timeout. So too
    // a response sent before its request's body was read whole (an upload refused at its line 2,
    // a body over its limit): the unread rest would hold the connection open, and a shutdown
    // with it (Node closes the socket once a `Connection: close` response is written).
    // In the lame-duck phase too (SHUTDOWN_DELAY_MS), as Go's Server.Shutdown and Envoy's drain
    // do: a kept-alive client's next request opens a new connection, which the Service sends to
    // another pod once the endpoints are updated, instead of meeting the drain's 503 here.
    // Those two close after the last request received when they first answer on the connection
    // (closesConnection): one pipelined behind this one by then is answered too (Node would send
    // it nothing once a response closes the connection), and the connection closes after its
    // response instead; one received later is behind the connection's end, not processed.
    // Fastify sets `Connection: close` on every response it routes once closing (route.js,
    // closeRoutes): replaced where this rule keeps the connection, or the request behind would
    // go unanswered in the drain. Replaced, not removed: a removed header is one Node no longer
    // adds itself, and an HTTP/1.0 answer without `keep-alive` says the connection closes.
    if (decideClose(request.raw)) void reply.header('Connection', 'close');
    else if (closing && reply.raw.shouldKeepAlive) reply.raw.setHeader('Connection', 'keep-alive');
    done(null, payload);
  });
  app.addHook('onResponse', onResponse);
  app.addHook('onRequestAbort', (request, done) => {
    recordUnanswered(request);
    done();
  });
  trackCallers(app.server, deps.inference, (response) => {
    const reply = replyOf(response);
    // Not routed (nothing to record), or still arriving: onRequestAbort's.
    if (reply === undefined || !reply.request.raw.complete) return;
    recordUnanswered(reply.request);
    abortReply(reply);
  });

  // Each route's declared access (config.access) decides which token it demands.
  app.addHook('onRoute', routeGuards({ admin: deps.adminToken, api: deps.config.API_TOKEN }));
  // Every documented route refuses a query parameter it does not read (strict-query.ts).
  app.addHook('onRoute', strictQuery);
  // A body is decoded once the route's guards have passed (content-encoding.ts).
  app.addHook('onRoute', decodeBeforeBody);
  // A prediction's decoded bytes are counted as they arrive, bounded (body-budget.ts).
  const bodyBudget = new BodyBudget(deps.config.MAX_BODY_BYTES_IN_FLIGHT, (model) => {
    // Only models of the registry are label values (attribute-model.ts).
    if (model !== undefined) deps.metrics.overloaded.inc({ model });
  });
  app.addHook('onRoute', bodyBudget.onRoute);
  app.decorate('bodyBudget', bodyBudget);
  // Last: a 100 Continue only once the route's guards have passed (expectations.ts).
  app.addHook('onRoute', continueBeforeBody);

  const openApiText = await registerOpenApi(app);
  app.decorate('openApiText', openApiText);
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
      // Prometheus may scrape with the `params` of its job (strict-query.ts).
      config: { access: 'public', anyQuery: true },
      schema: {
        tags: ['operations'],
        summary: 'Prometheus metrics (text exposition format)',
        description:
          'Public even with API_TOKEN set, as Prometheus scrapes it: its drift gauges (model and per-layer scores, rows counted) are aggregates of the prediction traffic, never a row or a histogram; restrict /metrics at the ingress if even those are too much.',
        response: {
          200: z.string().meta({
            description: `The Prometheus text exposition format (Content-Type: ${metrics.registry.contentType})`,
            content: { 'text/plain': { schema: { type: 'string' } } },
          }),
          503: problemSchema.describe(
            'CLUSTER_PRIMARY_TIMEOUT: with WORKERS > 1, the cluster primary, which sums the workers’ metrics, did not answer in time; with Retry-After: 1',
          ),
        },
      },
    },
    async (_request, reply) => reply.type(metrics.registry.contentType).send(await scrapeMetrics()),
  );
  app.get(
    '/openapi.json',
    {
      config: { access: 'public', anyQuery: true },
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
