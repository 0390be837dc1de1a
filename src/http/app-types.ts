import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ModelRegistry, ServerConfig, Services } from '../service/index.js';
import type { BodyBudget } from './body-budget.js';
import type { RateLimitCounter } from './fixed-window-counter.js';
import type { ServiceMetrics } from './metrics.js';

/**
 * What the HTTP layer is built from; the process (cli/server-worker.ts) or a test provides it,
 * its services built once by service/compose.ts's createServices (and shared with gRPC).
 */
export interface AppDeps extends Services {
  config: ServerConfig;
  registry: ModelRegistry;
  metrics: ServiceMetrics;
  /** Bearer token of the admin routes (generated at start-up when ADMIN_TOKEN is unset). */
  adminToken: string;
  /** normserve's version (package.json), reported by GET /v2. */
  version: string;
  /**
   * The text GET /metrics answers; default: this process's registry. With WORKERS > 1, the sum
   * over the server's workers, collected by the primary (cli/cluster-metrics.ts).
   */
  scrapeMetrics?: () => Promise<string>;
  /**
   * The admin rate limit's counter; default: one in this process. With WORKERS > 1, the primary's,
   * shared by every worker (cli/cluster-rate-limit.ts).
   */
  rateLimitCounter?: RateLimitCounter;
}

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps;
    /**
     * The OpenAPI document as GET /openapi.json sends it, built on the first call (registerOpenApi):
     * a server calls it once it is ready, so that neither its start nor a request waits for it.
     */
    openApiText: () => string;
    /** The prediction bodies held now (MAX_BODY_BYTES_IN_FLIGHT, body-budget.ts). */
    bodyBudget: BodyBudget;
  }
}

export type AppInstance = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;
