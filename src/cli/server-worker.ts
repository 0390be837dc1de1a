/**
 * One server process: the logger, the model registry with its repository watch, the HTTP app and
 * the gRPC server, listen, graceful shutdown. With WORKERS > 1 every cluster worker runs this; with
 * WORKERS=1 the process itself does.
 */
import cluster from 'node:cluster';
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import type { GrpcServerHandle } from '../grpc/grpc-server.js';
import { buildApp } from '../http/app.js';
import { ServiceMetrics } from '../http/metrics.js';
import {
  createServices,
  defaultEngineThreads,
  droppedPinsWords,
  intentsReplacedWords,
  ModelRegistry,
  type ServerConfig,
  unavailableRetryAfterSeconds,
} from '../service/index.js';
import { adminTokenOf } from './admin-token.js';
import { shareDrift } from './cluster-drift.js';
import { listenerHandover } from './cluster-listener.js';
import { PrimaryChannel } from './cluster-messages.js';
import { answerCollectRequests, clusterScrape } from './cluster-metrics.js';
import { announceModelWrites, answerRefreshRequests, scanAndAnnounce } from './cluster-models.js';
import { clusterRateLimitCounter } from './cluster-rate-limit.js';
import { startModelsOf } from './cluster-start-models.js';
import { applyHeapGrowingPercent } from './heap-growth.js';
import { lameDuckOnSignal, relayedSignalsOnly } from './lame-duck.js';
import { listenFailed } from './listen-failure.js';
import { packageVersion } from './package-version.js';
import { rescanOnHangup } from './rescan-on-hangup.js';
import { armJobBudget } from './shutdown-budget.js';
import { turnLogDestination } from './turn-log-destination.js';

/**
 * The signals close-with-grace listens to unless skipped (its events/signal.events.js; a test
 * holds this list equal to it). None starts its drain here: SIGSEGV, SIGBUS, SIGFPE and SIGILL
 * cannot safely run JavaScript at all, and SIGUSR2, SIGQUIT, SIGTRAP and SIGABRT end the process
 * as Node ends any other (rescan-on-hangup.ts says why).
 */
export const CLOSE_WITH_GRACE_SIGNALS = [
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGSEGV',
  'SIGUSR2',
  'SIGTERM',
] as const;

export async function startServer(config: ServerConfig): Promise<void> {
  applyHeapGrowingPercent(config.V8_HEAP_GROWING_PERCENT);
  // Each event-loop turn's log lines leave in one write at the end of the turn
  // (turn-log-destination.ts).
  const logger = pino(
    { level: config.LOG_LEVEL, redact: ['req.headers.authorization'] },
    turnLogDestination(),
  );
  const metrics = new ServiceMetrics();
  // A cluster worker serves the server's metrics and counts admin requests through the primary.
  const channel = cluster.isWorker ? new PrimaryChannel() : undefined;
  if (channel) {
    channel.onCollect = answerCollectRequests(channel, metrics);
    // From the start: a signal to the whole process group reaches the worker directly and through
    // the primary's relay, and counts once (lame-duck.ts).
    relayedSignalsOnly(channel, logger);
  }
  const registry = new ModelRegistry(config.MODEL_REPOSITORY, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    engine: config.ENGINE,
    engineThreads: config.ENGINE_THREADS ?? defaultEngineThreads(config.WORKERS),
    strictReadiness: config.STRICT_READINESS === 'on',
    startModels: startModelsOf(process.env),
    unavailableRetryAfterSeconds: unavailableRetryAfterSeconds(config.MODEL_POLL_INTERVAL_MS),
    log: logger,
    onLoadFailure: (model) => metrics.loadFailures.inc({ model }),
    // A cluster worker's writes reach the server's other workers before the call returns.
    ...(channel ? { onWrite: announceModelWrites(channel, logger) } : {}),
  });
  // From here on (before the first scan) SIGHUP rescans instead of ending the process.
  rescanOnHangup(registry, logger);
  if (channel) channel.onRefreshModel = answerRefreshRequests(channel, registry, logger);
  const { removed, failed, pinsUndone, pinActivations, pinsDropped, pinsUnsettled } =
    await registry.repository.removeTemporaries();
  for (const { model, pins } of pinsDropped)
    logger.warn({ model, dropped: pins }, droppedPinsWords(model, pins));
  if (removed.length > 0)
    logger.info({ removed }, 'removed temporary leftovers of interrupted writes');
  for (const model of pinsUndone)
    logger.warn(
      { model },
      'undid the pin of the active version a publish left when its process died before publishing (or published a version that does not load): the record it replaced is back, or, if none, the highest version is served again',
    );
  for (const { model, version, intentsReplaced } of pinActivations)
    logger.warn(
      { model, version, ...(intentsReplaced ? { intentsReplaced } : {}) },
      `activated a version whose publish died between publishing it and recording it as active (its activation was conditional on the version the pin named, which the record still named): finished as that publish would have${intentsReplacedWords(model, intentsReplaced)}`,
    );
  // A leftover is hidden from every reader: one that stays (a read-only repository) stops nothing.
  for (const { path, error } of failed)
    logger.warn({ path, error }, 'could not remove a temporary leftover of an interrupted write');
  for (const { model, error } of pinsUnsettled)
    logger.warn(
      { model, error },
      'could not settle the pin a dead publish left in the active-version record: the next cleanup (a start, or a publish of the model) tries again',
    );
  await registry.refresh();
  const adminToken = adminTokenOf(config, logger, 'process');
  // Every model, whatever STRICT_READINESS makes of it for the readiness routes; an empty
  // repository (a volume mounted at the wrong path, a claim nobody seeded) is never ready.
  const unserved = registry
    .list()
    .filter((m) => m.active === undefined)
    .map((m) => m.name);
  if (unserved.length > 0)
    logger.warn({ models: unserved }, 'not every model has an available version');
  if (registry.list().length === 0)
    logger.warn(
      { repository: config.MODEL_REPOSITORY },
      'the model repository holds no model: not ready until one is added',
    );

  // Built once, for both transports; the app closes drift and recalibration (after its routes):
  // buildApp. The phase goes starting, serving once every transport listens, then lame duck from
  // SIGTERM/SIGINT for SHUTDOWN_DELAY_MS, then draining: one signal for the readiness routes of
  // every transport.
  const services = createServices({
    config,
    registry,
    metrics,
    log: logger,
    cluster: channel !== undefined,
    starting: true,
  });
  const { drift, inference, recalibration, phase } = services;
  const stopSharing = channel ? shareDrift(channel, drift) : undefined;
  const app = await buildApp({
    ...services,
    config,
    registry,
    metrics,
    adminToken,
    version: packageVersion(),
    logger,
    ...(channel
      ? {
          scrapeMetrics: clusterScrape(channel),
          rateLimitCounter: clusterRateLimitCounter(channel),
          // The last worker to stop listening lets the primary close the shared socket.
          listenerHandover: listenerHandover(channel, logger),
        }
      : {}),
  });
  let grpc: GrpcServerHandle | undefined;
  let poll: NodeJS.Timeout | undefined;
  if (config.MODEL_POLL_INTERVAL_MS > 0) {
    // A cluster worker tells the others what its scan found changed (scanAndAnnounce).
    const announce = channel ? announceModelWrites(channel, logger) : undefined;
    poll = setInterval(() => {
      (announce ? scanAndAnnounce(registry, announce) : registry.refresh()).catch((e: unknown) =>
        logger.error({ err: e }, 'repository poll failed'),
      );
    }, config.MODEL_POLL_INTERVAL_MS);
  }

  let drainSignal: NodeJS.Signals | undefined;
  const graceful = closeWithGrace(
    {
      delay: config.SHUTDOWN_TIMEOUT_MS,
      logger: { error: (m: unknown) => logger.error(m) },
      // No signal starts this drain: SIGTERM and SIGINT are lameDuckOnSignal's (they drain after
      // SHUTDOWN_DELAY_MS), SIGHUP rescans the repository, the rest keep Node's handling.
      skip: [...CLOSE_WITH_GRACE_SIGNALS],
      // What still ran is named: the jobs were interrupted before (shutdown-budget.ts), so one
      // listed here had begun publishing or could not write its record in the reserve.
      onTimeout: (delayMs: number) =>
        logger.error(
          { shutdownTimeoutMs: delayMs, jobs: recalibration.runningJobs() },
          'the drain did not end within SHUTDOWN_TIMEOUT_MS: exiting 1',
        ),
    },
    async ({ signal, err }) => {
      phase.enter('draining');
      if (err) logger.error({ err }, 'shutting down after an error');
      else
        logger.info(
          { signal: signal ?? drainSignal },
          'shutting down: no new connections, finishing requests in flight',
        );
      if (poll) clearInterval(poll);
      stopSharing?.();
      // Recalibration jobs get the drain's budget; those still running then are interrupted, each
      // settled failed (JOB_INTERRUPTED) with a warning naming it, before the process ends.
      const jobBudget = armJobBudget(recalibration, config.SHUTDOWN_TIMEOUT_MS, logger);
      // Both transports stop taking work and finish what is in flight, together.
      await Promise.all([app.close(), grpc?.close(config.SHUTDOWN_TIMEOUT_MS)]);
      // Serving nothing more: another worker's change is acknowledged without loading it.
      if (channel)
        channel.onRefreshModel = (id) => channel.send({ type: 'normserve:model-refreshed', id });
      registry.close();
      if (await jobBudget.stop()) {
        // Work was lost: the exit status says so, as when the drain itself runs out.
        logger.warn(
          'stopped: recalibration jobs were interrupted by the shutdown budget; exiting 1',
        );
        process.exit(1);
      }
      logger.info('stopped');
    },
  );

  lameDuckOnSignal({
    phase,
    delayMs: config.SHUTDOWN_DELAY_MS,
    logger,
    drain: (signal) => {
      drainSignal = signal;
      graceful.close();
    },
    // A worker counts the primary's relays, not its own signals (lame-duck.ts says why).
    ...(channel ? { channel } : {}),
  });

  await app.listen({ port: config.PORT, host: config.HOST }).catch((e: unknown) => {
    throw listenFailed(e, { prefix: '', portHint: 'set PORT to a free port' });
  });
  if (config.GRPC_PORT > 0) {
    // Loaded once HTTP listens (as before, gRPC listens right after HTTP): grpc-js, proto-loader
    // and protobufjs are a third of the server's code, and a worker that waited for them before
    // its first HTTP request would start that much later (issue 13).
    const { createGrpcServer, listenGrpc, routeGrpcJsLog } = await import('../grpc/grpc-server.js');
    routeGrpcJsLog(logger);
    // Under node:cluster every worker binds the same port and the listening socket is shared as
    // for HTTP; each HTTP/2 connection (and every call on it) stays on the worker that accepted it.
    const server = createGrpcServer({
      inference,
      version: packageVersion(),
      maxBatchSize: config.MAX_BATCH_SIZE,
      maxMessageBytes: config.BODY_LIMIT_BYTES,
      apiToken: config.API_TOKEN,
      receiveTimeoutMs: config.REQUEST_TIMEOUT_MS,
      ...(config.GRPC_MAX_CONCURRENT_STREAMS !== undefined
        ? { maxConcurrentStreams: config.GRPC_MAX_CONCURRENT_STREAMS }
        : {}),
      log: logger,
      observer: metrics,
      maxConnections: config.MAX_CONNECTIONS,
      onConnectionDropped: () => metrics.connectionsDropped.inc(),
      maxConnectionAgeMs: config.GRPC_MAX_CONNECTION_AGE_MS,
      maxConnectionAgeGraceMs: config.GRPC_MAX_CONNECTION_AGE_GRACE_MS,
      keepaliveTimeMs: config.GRPC_KEEPALIVE_TIME_MS,
      keepaliveTimeoutMs: config.GRPC_KEEPALIVE_TIMEOUT_MS,
      phase,
    });
    grpc = await listenGrpc(server, config.HOST, config.GRPC_PORT).catch((e: unknown) => {
      throw listenFailed(e, {
        prefix: 'gRPC: ',
        portHint: 'set GRPC_PORT to a free port (0 = no gRPC server)',
      });
    });
    logger.info({ port: grpc.port, host: config.HOST }, 'gRPC server listening');
  }
  // Ready from here (models permitting): gRPC listened ~0.2 s after HTTP, and a readiness probe in
  // between sent gRPC clients to a port that refused them.
  phase.enter('serving');
  // Listening: the primary may ask for this worker's metrics from now on.
  channel?.send({ type: 'normserve:ready', startModels: registry.countedModels() });
  // The OpenAPI document, built now that the server is ready (registerOpenApi): before listening
  // it delayed readiness by its whole cost, and a request that comes meanwhile waits at most the
  // rest of it, where before it could not have been served until the document was built.
  setImmediate(() => app.openApiText());
}
