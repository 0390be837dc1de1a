import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type {
  DriftService,
  InferenceService,
  ModelRegistry,
  RecalibrationService,
  ServerConfig,
  ServingPhase,
} from '../service/index.js';
import type { RateLimitCounter } from './fixed-window-counter.js';
import type { ServiceMetrics } from './metrics.js';

/** What the HTTP layer is built from; the process (cli/server.ts) or a test provides it. */
export interface AppDeps {
  config: ServerConfig;
  registry: ModelRegistry;
  /** The inference use case (shared with the gRPC server, so both feed one dynamic batcher). */
  inference: InferenceService;
  /** Live drift statistics and AUTO_RECALIBRATE (the inference service's traffic observer). */
  drift: DriftService;
  /** The recalibration use case (the admin routes' and AUTO_RECALIBRATE's: one lock, one set of jobs). */
  recalibration: RecalibrationService;
  metrics: ServiceMetrics;
  /**
   * Serving, lame duck (after SIGTERM, SHUTDOWN_DELAY_MS: readiness 503) or draining; the process
   * moves it (cli/server-worker.ts) and the readiness routes read it.
   */
  phase: ServingPhase;
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
  }
}

export type AppInstance = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;
