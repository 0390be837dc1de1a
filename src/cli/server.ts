#!/usr/bin/env node
/**
 * The server process: configuration from the environment (parsed once), the logger, the model
 * registry with its repository watch, the app, listen, graceful shutdown. `npm start` runs it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import closeWithGrace from 'close-with-grace';
import pino from 'pino';
import { isNormserveError } from '../errors/index.js';
import { buildApp } from '../http/app.js';
import { ServiceMetrics } from '../http/metrics.js';
import { ModelRegistry, parseServerConfig, type ServerConfig } from '../service/index.js';

const packageVersion = (): string => {
  try {
    return (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      }
    ).version;
  } catch {
    return '0.0.0';
  }
};

export async function startServer(config: ServerConfig): Promise<void> {
  const logger = pino({ level: config.LOG_LEVEL, redact: ['req.headers.authorization'] });
  let adminToken = config.ADMIN_TOKEN;
  if (adminToken === undefined) {
    adminToken = randomBytes(24).toString('base64url');
    // Logged once so a local `npm start` is usable; set ADMIN_TOKEN to choose it.
    logger.warn(
      { adminToken },
      'ADMIN_TOKEN is not set; generated an admin token for this process',
    );
  }
  const metrics = new ServiceMetrics();
  const registry = new ModelRegistry(config.MODEL_REPOSITORY, {
    maxBatchSize: config.MAX_BATCH_SIZE,
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
  if (!registry.isReady())
    logger.warn(
      { models: registry.list().map((m) => m.name) },
      'not every model has an available version',
    );

  const app = await buildApp({
    config,
    registry,
    metrics,
    adminToken,
    version: packageVersion(),
    logger,
  });
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
      await app.close();
      logger.info('stopped');
    },
  );

  await app.listen({ port: config.PORT, host: config.HOST });
}

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = parseServerConfig(process.env);
  } catch (e) {
    process.stderr.write(`normserve: ${isNormserveError(e) ? e.message : String(e)}\n`);
    process.exit(1);
  }
  await startServer(config);
}

await main();
