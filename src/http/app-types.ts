import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { InferenceService, ModelRegistry, ServerConfig } from '../service/index.js';
import type { ServiceMetrics } from './metrics.js';

/** What the HTTP layer is built from; the process (cli/server.ts) or a test provides it. */
export interface AppDeps {
  config: ServerConfig;
  registry: ModelRegistry;
  /** The inference use case (shared with the gRPC server, so both feed one dynamic batcher). */
  inference: InferenceService;
  metrics: ServiceMetrics;
  /** Bearer token of the admin routes (generated at start-up when ADMIN_TOKEN is unset). */
  adminToken: string;
  /** normserve's version (package.json), reported by GET /v2. */
  version: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps;
  }
}

export type AppInstance = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;
