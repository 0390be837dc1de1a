import pino from 'pino';
import { createServices, ModelRegistry, parseServerConfig } from '../service/index.js';
import { buildApp } from './app.js';
import { ServiceMetrics } from './metrics.js';

/**
 * The OpenAPI document of the app with the default configuration and an empty repository: what
 * `npm run openapi` writes to openapi/openapi.json (routes and schemas don't depend on models).
 */
export async function openApiDocument(version: string): Promise<unknown> {
  const config = parseServerConfig({ MODEL_REPOSITORY: '/nonexistent' });
  const registry = new ModelRegistry(config.MODEL_REPOSITORY, {
    maxBatchSize: config.MAX_BATCH_SIZE,
  });
  const metrics = new ServiceMetrics({ defaultMetrics: false });
  const logger = pino({ level: 'silent' });
  const app = await buildApp({
    ...createServices({ config, registry, metrics, log: logger }),
    config,
    registry,
    metrics,
    adminToken: 'unused-token-for-the-document',
    version,
    logger,
  });
  await app.ready();
  const document = app.swagger();
  await app.close();
  return document;
}
