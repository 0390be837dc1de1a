#!/usr/bin/env node
/**
 * The server process: configuration from the environment (parsed once), the logger, the model
 * registry with its repository watch, the app, listen, graceful shutdown. `npm start` runs it.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { isNormserveError } from '../errors/index.js';
import { createGrpcServer, type GrpcServerHandle, listenGrpc } from '../grpc/grpc-server.js';
import { buildApp, createDriftService, createInferenceService } from '../http/app.js';
import { ServiceMetrics } from '../http/metrics.js';
import { FixedWindowCounter } from '../http/rate-limit.js';
import {
  defaultEngineThreads,
  ModelRegistry,
  parseServerConfig,
  type ServerConfig,
} from '../service/index.js';
import { onWorkerMessage, PrimaryChannel, sendToWorker } from './cluster-messages.js';
import { answerCollectRequests, ClusterMetricsPrimary, clusterScrape } from './cluster-metrics.js';
import { answerRateLimit, clusterRateLimitCounter } from './cluster-rate-limit.js';
import { packageVersion } from './package-version.js';

/** A worker's exit code for "could not start": the primary stops instead of replacing it. */
const EXIT_START_FAILED = 78;

export async function startServer(config: ServerConfig): Promise<void> {
  // Log lines are written asynchronously: while one write is in flight the next lines gather and
  // leave together, so a busy server makes few write calls instead of one per request, and an idle
  // one still writes each line at once. pino flushes what is pending when the process exits.
  const logger = pino(
    { level: config.LOG_LEVEL, redact: ['req.headers.authorization'] },
    pino.destination({ dest: 1, sync: false }),
  );
  const metrics = new ServiceMetrics();
  // A cluster worker serves the server's metrics and counts admin requests through the primary.
  const channel = cluster.isWorker ? new PrimaryChannel() : undefined;
  if (channel) channel.onCollect = answerCollectRequests(channel, metrics);
  const registry = new ModelRegistry(config.MODEL_REPOSITORY, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    engine: config.ENGINE,
    engineThreads: config.ENGINE_THREADS ?? defaultEngineThreads(config.WORKERS),
    log: logger,
    onLoadFailure: (model) => metrics.loadFailures.inc({ model }),
    onChange: (snapshot) => {
      if (snapshot.active !== undefined)
        metrics.activeVersion.set({ model: snapshot.name }, snapshot.active);
    },
  });
  const removed = await registry.repository.removeTemporaries();
  if (removed.length > 0)
    logger.info({ removed }, 'removed temporary leftovers of interrupted writes');
  await registry.refresh();
  let adminToken = config.ADMIN_TOKEN;
  if (adminToken === undefined) {
    adminToken = randomBytes(24).toString('base64url');
    // Logged once so a local `npm start` is usable; set ADMIN_TOKEN to choose it.
    logger.warn(
      { adminToken },
      'ADMIN_TOKEN is not set; generated an admin token for this process',
    );
  }
  if (!registry.isReady())
    logger.warn(
      { models: registry.list().map((m) => m.name) },
      'not every model has an available version',
    );

  const drift = createDriftService(config, registry, metrics, logger);
  const inference = createInferenceService(config, registry, metrics, drift);
  const app = await buildApp({
    config,
    registry,
    inference,
    drift,
    metrics,
    adminToken,
    version: packageVersion(),
    logger,
    ...(channel
      ? {
          scrapeMetrics: clusterScrape(channel),
          rateLimitCounter: clusterRateLimitCounter(channel),
        }
      : {}),
  });
  let grpc: GrpcServerHandle | undefined;
  let poll: NodeJS.Timeout | undefined;
  if (config.MODEL_POLL_INTERVAL_MS > 0) {
    poll = setInterval(() => {
      registry.refresh().catch((e: unknown) => logger.error({ err: e }, 'repository poll failed'));
    }, config.MODEL_POLL_INTERVAL_MS);
  }

  closeWithGrace(
    { delay: config.SHUTDOWN_TIMEOUT_MS, logger: { error: (m: unknown) => logger.error(m) } },
    async ({ signal, err }) => {
      if (err) logger.error({ err }, 'shutting down after an error');
      else
        logger.info({ signal }, 'shutting down: no new connections, finishing requests in flight');
      if (poll) clearInterval(poll);
      // Both transports stop taking work and finish what is in flight, together.
      await Promise.all([app.close(), grpc?.close(config.SHUTDOWN_TIMEOUT_MS)]);
      registry.close();
      logger.info('stopped');
    },
  );

  await app.listen({ port: config.PORT, host: config.HOST });
  if (config.GRPC_PORT > 0) {
    // Under node:cluster every worker binds the same port and the listening socket is shared as
    // for HTTP; each HTTP/2 connection (and every call on it) stays on the worker that accepted it.
    const server = createGrpcServer({
      inference,
      version: packageVersion(),
      maxBatchSize: config.MAX_BATCH_SIZE,
      maxMessageBytes: config.BODY_LIMIT_BYTES,
      apiToken: config.API_TOKEN,
      log: logger,
      observer: metrics,
    });
    grpc = await listenGrpc(server, config.HOST, config.GRPC_PORT);
    logger.info({ port: grpc.port, host: config.HOST }, 'gRPC server listening');
  }
  // Listening: the primary may ask for this worker's metrics from now on.
  channel?.send({ type: 'normserve:ready' });
}

/**
 * The primary's answers to its workers: the whole server's metrics (cluster-metrics.ts) and the
 * server's one admin rate limit (cluster-rate-limit.ts).
 */
function answerWorkers(metrics: ClusterMetricsPrimary, logger: pino.Logger): void {
  const rateLimits = new FixedWindowCounter();
  onWorkerMessage((worker, message) => {
    switch (message.type) {
      case 'normserve:ready':
        metrics.add(worker);
        break;
      case 'normserve:collected':
        metrics.collected(worker, message);
        break;
      case 'normserve:scrape':
        metrics.scrape().then(
          (text) => sendToWorker(worker, { type: 'normserve:scraped', id: message.id, text }),
          (e: unknown) => {
            logger.error({ err: e }, 'collecting the cluster metrics failed');
            sendToWorker(worker, { type: 'normserve:scraped', id: message.id, error: String(e) });
          },
        );
        break;
      case 'normserve:rate-limit':
        void answerRateLimit(rateLimits, worker, message);
        break;
    }
  });
}

/**
 * WORKERS > 1: a primary that forks that many server processes sharing the port (node:cluster
 * distributes connections round-robin). Every worker loads the repository and watches it, so a
 * recalibration or activation made through one worker reaches the others through the repository
 * (within MODEL_POLL_INTERVAL_MS). SIGTERM/SIGINT drain every worker; a worker that dies otherwise
 * is replaced.
 */
async function runPrimary(config: ServerConfig): Promise<void> {
  const logger = pino({ level: config.LOG_LEVEL });
  const registry = new ModelRegistry(config.MODEL_REPOSITORY, {
    maxBatchSize: config.MAX_BATCH_SIZE,
  });
  const removed = await registry.repository.removeTemporaries();
  if (removed.length > 0)
    logger.info({ removed }, 'removed temporary leftovers of interrupted writes');
  if (config.ADMIN_TOKEN === undefined) {
    // One token for all workers, logged once.
    const adminToken = randomBytes(24).toString('base64url');
    process.env.ADMIN_TOKEN = adminToken;
    logger.warn({ adminToken }, 'ADMIN_TOKEN is not set; generated an admin token for this server');
  }

  const clusterMetrics = new ClusterMetricsPrimary();
  answerWorkers(clusterMetrics, logger);

  let stopping = false;
  let startFailed = false;
  const recentDeaths: number[] = [];
  // Workers accept from the shared socket themselves (SCHED_NONE) rather than through the
  // primary's round-robin: a worker that closes stops accepting at once, so during shutdown no
  // connection is handed to a worker that is already closing (it would hang until that worker
  // exits). The kernel then balances connections by which worker is free to accept.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const fork = (): Worker => cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    // Its counters join the retired bucket, so the server's totals never go backwards.
    clusterMetrics.retire(worker, !stopping);
    if (stopping) return;
    if (code === EXIT_START_FAILED) {
      // The worker printed why (a taken port, say); another one would fail the same way.
      logger.fatal({ worker: worker.process.pid }, 'a worker could not start; stopping');
      startFailed = true;
      stop('SIGTERM');
      return;
    }
    logger.error({ worker: worker.process.pid, code, signal }, 'worker died; starting a new one');
    const now = Date.now();
    recentDeaths.push(now);
    while (recentDeaths.length > 0 && now - recentDeaths[0]! > 60_000) recentDeaths.shift();
    // A crash loop (e.g. the port is taken) must not spin: give up after 10 deaths a minute.
    if (recentDeaths.length > 10) {
      logger.fatal('workers keep dying; stopping');
      process.exit(1);
    }
    fork();
  });
  for (let i = 0; i < config.WORKERS; i++) fork();
  logger.info(
    { workers: config.WORKERS, port: config.PORT, host: config.HOST },
    'primary started workers',
  );

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping workers');
    const workers = Object.values(cluster.workers ?? {}).filter(
      (w): w is Worker => w !== undefined,
    );
    let clean = true;
    let left = workers.length;
    const done = () => {
      logger.info({ clean }, 'all workers stopped');
      process.exit(clean && !startFailed ? 0 : 1);
    };
    if (left === 0) done();
    for (const worker of workers) {
      worker.once('exit', (code) => {
        if (code !== 0) clean = false;
        if (--left === 0) done();
      });
      worker.process.kill('SIGTERM');
    }
    setTimeout(() => {
      logger.error('workers did not stop in time; killing them');
      for (const worker of workers) worker.process.kill('SIGKILL');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS + 2_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = parseServerConfig(process.env);
  } catch (e) {
    process.stderr.write(`normserve: ${isNormserveError(e) ? e.message : String(e)}\n`);
    process.exit(1);
  }
  try {
    if (config.WORKERS > 1 && cluster.isPrimary) await runPrimary(config);
    else await startServer(config);
  } catch (e) {
    // Expected start-up failures (a missing repository, a taken port) are one line, not a stack.
    const message = isNormserveError(e)
      ? e.message
      : e instanceof Error && 'code' in e
        ? e.message
        : undefined;
    if (message === undefined) throw e;
    process.stderr.write(`normserve: ${message}\n`);
    process.exit(cluster.isWorker ? EXIT_START_FAILED : 1);
  }
}

await main();
