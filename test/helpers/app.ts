/**
 * Builds the real app on a temporary copy of a model repository, for `app.inject` tests.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { buildApp } from '../../src/http/app.js';
import type { AppInstance } from '../../src/http/app-types.js';
import { ServiceMetrics } from '../../src/http/metrics.js';
import {
  createServices,
  ModelRegistry,
  parseServerConfig,
  type ServerConfig,
} from '../../src/service/index.js';
import { copyBundledModel, isBundledModel } from './bundled-models.js';
import { TEST_ENGINE } from './engine.js';
import { testTempRoot } from './temp-root.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/**
 * Models a test repository can hold: the bundled ones (their bundled version only, never what
 * `npm run train` added to models/) and the PyTorch-made fixtures (name → directory of versions).
 */
export const MODEL_SOURCES = {
  digits: 'bundled',
  'digits-cnn': 'bundled',
  'digits-torch': 'test/fixtures/torch-model/digits-torch',
  'digits-cnn-torch': 'test/fixtures/torch-model/digits-cnn-torch',
} as const;

export interface TestApp {
  app: AppInstance;
  registry: ModelRegistry;
  repository: string;
  config: ServerConfig;
  close(): Promise<void>;
}

/** A repository in a fresh temp directory with copies of the given models. */
export function makeRepository(
  models: readonly (keyof typeof MODEL_SOURCES)[] = ['digits'],
): string {
  const root = mkdtempSync(join(testTempRoot(), 'normserve-repo-'));
  for (const name of models) {
    if (isBundledModel(name)) copyBundledModel(name, root);
    else cpSync(MODEL_SOURCES[name], join(root, name), { recursive: true });
  }
  return root;
}

/**
 * A repository of `digits` whose versions 2 and 3 are copies of version 1: versions that load,
 * for tests of activations and of the active record's writers.
 */
export function makeDigitsVersionsRepository(): string {
  const root = makeRepository(['digits']);
  const modelDir = join(root, 'digits');
  for (const v of [2, 3])
    cpSync(join(modelDir, '1'), join(modelDir, String(v)), { recursive: true });
  return root;
}

export async function makeTestApp(
  options: {
    models?: (keyof typeof MODEL_SOURCES)[];
    repository?: string;
    env?: Record<string, string>;
    /** Where the app logs (silent by default). */
    logger?: FastifyBaseLogger;
    /** buildApp's scrapeMetrics (GET /metrics; the app's own registry by default). */
    scrapeMetrics?: () => Promise<string>;
  } = {},
): Promise<TestApp> {
  const repository = options.repository ?? makeRepository(options.models);
  const config = parseServerConfig({
    MODEL_REPOSITORY: repository,
    ADMIN_TOKEN,
    MODEL_POLL_INTERVAL_MS: '0',
    ENGINE: TEST_ENGINE,
    LOG_LEVEL: 'silent',
    ...options.env,
  });
  const registry = new ModelRegistry(repository, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    engine: config.ENGINE,
    engineThreads: config.ENGINE_THREADS,
    strictReadiness: config.STRICT_READINESS === 'on',
  });
  await registry.refresh();
  const metrics = new ServiceMetrics({ defaultMetrics: false });
  const logger = options.logger ?? pino({ level: 'silent' });
  const app = await buildApp({
    ...createServices({ config, registry, metrics, log: logger }),
    config,
    registry,
    metrics,
    adminToken: config.ADMIN_TOKEN ?? ADMIN_TOKEN,
    version: '0.0.0-test',
    logger,
    ...(options.scrapeMetrics ? { scrapeMetrics: options.scrapeMetrics } : {}),
  });
  await app.ready();
  return {
    app,
    registry,
    repository,
    config,
    close: async () => {
      await app.close();
      registry.close();
      if (!options.repository) rmSync(repository, { recursive: true, force: true });
    },
  };
}

/** The digits test rows (CSV rows 1437..1796): raw pixels and labels. */
export { digitsTestRows } from './digits.js';
