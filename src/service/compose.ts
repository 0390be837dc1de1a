/**
 * The composition root of the server's use cases: the drift, inference and recalibration services
 * and the serving phase, built once from the configuration and handed to every transport (the HTTP
 * app, the gRPC server) and to the tests alike.
 */
import type { RecalibrationMode } from '../recalibration/index.js';
import type { AutoAction, AutoOutcome } from './drift-context.js';
import { DriftService } from './drift-service.js';
import type { BatchReport } from './dynamic-batcher.js';
import { InferenceService } from './inference-service.js';
import type { Log } from './logger.js';
import type { ModelRegistry } from './model-registry.js';
import { RecalibrationService } from './recalibration-service.js';
import type { ServerConfig } from './server-config.js';
import { ServingPhase } from './serving-phase.js';

/**
 * What the services report to: the counters and observers they feed. The HTTP layer's
 * ServiceMetrics (prom-client) is one; service/ names only the shape, as it may not import http/.
 */
export interface ServiceMetricsSink {
  readonly autoRecalibrations: {
    inc(labels: { model: string; action: AutoAction; outcome: AutoOutcome }): void;
  };
  readonly autoOutlierRows: { inc(labels: { model: string }, value: number): void };
  readonly recalibrations: {
    inc(labels: {
      model: string;
      mode: RecalibrationMode;
      outcome: 'succeeded' | 'failed' | 'client_error';
    }): void;
  };
  readonly overloaded: { inc(labels: { model: string }): void };
  observeBatch(report: BatchReport): void;
  observeDrift(drift: DriftService): void;
}

export interface ServicesOptions {
  config: ServerConfig;
  registry: ModelRegistry;
  metrics: ServiceMetricsSink;
  log: Log;
  /** WORKERS > 1: one of several processes (drift shares its statistics; decides when told). */
  cluster?: boolean;
  /** The phase begins `starting`: the process enters `serving` once every transport listens. */
  starting?: boolean;
}

/** The use cases one server process serves with, shared by its transports. */
export interface Services {
  /** Live drift statistics and AUTO_RECALIBRATE (the inference service's traffic observer). */
  drift: DriftService;
  /** The inference use case (HTTP and gRPC feed one dynamic batcher). */
  inference: InferenceService;
  /** The recalibration use case (the admin routes' and AUTO_RECALIBRATE's: one lock, one set of jobs). */
  recalibration: RecalibrationService;
  /**
   * Starting, serving, lame duck (after SIGTERM, SHUTDOWN_DELAY_MS: readiness 503) or draining; the process
   * moves it (cli/server-worker.ts) and every transport's readiness reads it.
   */
  phase: ServingPhase;
}

/**
 * The services configured from the server configuration:
 * - drift from DRIFT_*, AUTO_RECALIBRATE* and TRAFFIC_SAMPLE_*, counting its actions;
 * - recalibration from MAX_RECALIBRATION_SAMPLES, RECALIBRATION_MEMORY_BYTES,
 *   RECALIBRATION_ASYNC_ROWS and ENGINE, counting its outcomes; AUTO_RECALIBRATE (drift) publishes
 *   through it, so automatic and requested recalibrations share its lock and jobs;
 * - inference from BATCH_*, ENGINE_ASYNC and MAX_QUEUED_REQUESTS, reporting batches and refusals,
 *   with drift as its traffic observer.
 */
export function createServices(options: ServicesOptions): Services {
  const { config, registry, metrics, log } = options;
  const drift = new DriftService({
    ...(options.cluster ? { share: true, decides: false } : {}),
    sampleFraction: config.DRIFT_SAMPLE_FRACTION,
    windowMs: config.DRIFT_WINDOW_MS,
    windows: config.DRIFT_WINDOWS,
    threshold: config.DRIFT_THRESHOLD,
    minRows: config.DRIFT_MIN_ROWS,
    autoRecalibrate: config.AUTO_RECALIBRATE,
    autoMinRows: config.AUTO_RECALIBRATE_MIN_ROWS,
    autoIntervalMs: config.AUTO_RECALIBRATE_INTERVAL_MS,
    outlierBound: config.AUTO_RECALIBRATE_OUTLIER_BOUND,
    sampleRows: config.TRAFFIC_SAMPLE_ROWS,
    sampleBytes: config.TRAFFIC_SAMPLE_BYTES,
    log,
    onAction: (model, action, outcome) =>
      metrics.autoRecalibrations.inc({ model, action, outcome }),
    onOutlierRows: (model, rows) => metrics.autoOutlierRows.inc({ model }, rows),
  });
  drift.useRegistry(registry);
  metrics.observeDrift(drift);

  const recalibration = RecalibrationService.forRepository(registry, {
    maxSamples: config.MAX_RECALIBRATION_SAMPLES,
    rowMemoryBytes: config.RECALIBRATION_MEMORY_BYTES,
    asyncRows: config.RECALIBRATION_ASYNC_ROWS,
    engine: config.ENGINE,
    log,
    onOutcome: (model, mode, outcome) => metrics.recalibrations.inc({ model, mode, outcome }),
  });
  drift.useRecalibration(recalibration);

  const inference = new InferenceService(registry, {
    batchMaxDelayUs: config.BATCH_MAX_DELAY_US,
    batchMaxRows: config.BATCH_MAX_ROWS,
    engineAsync: config.ENGINE_ASYNC === 'on',
    onBatch: (report) => metrics.observeBatch(report),
    observer: drift,
    maxQueuedRequests: config.MAX_QUEUED_REQUESTS,
    onOverload: (model) => metrics.overloaded.inc({ model }),
  });

  const phase = new ServingPhase(options.starting ? 'starting' : 'serving');
  // From the shutdown signal on, a new recalibration is refused (SHUTTING_DOWN): one started in
  // the lame-duck phase would be cut by the drain's budget; its client retries elsewhere.
  phase.onChange(() => {
    if (!phase.acceptingTraffic) recalibration.stopAccepting();
  });
  return { drift, inference, recalibration, phase };
}
