import type { ServerWritableStream } from '@grpc/grpc-js';
import { NormserveError, quote } from '../errors/index.js';
import {
  type ModelRegistry,
  modelReadiness,
  type ServingPhase,
  serverReadiness,
} from '../service/index.js';
import { requestField } from './messages.js';

/**
 * gRPC's standard health checking protocol (grpc.health.v1.Health of proto/health.proto,
 * https://github.com/grpc/grpc/blob/master/doc/health-checking.md), for Kubernetes `grpc:`
 * probes, grpc_health_probe and Envoy's gRPC health checks. Served by grpc-server.ts.
 */

/** The inference service's full name: a health service name meaning the server, as "" does. */
export const INFERENCE_SERVICE_NAME = 'inference.GRPCInferenceService';

/** How often a Watch looks at readiness again (the registry announces no change). */
export const HEALTH_WATCH_INTERVAL_MS = 1_000;

export type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/**
 * The service name of a decoded HealthCheckRequest (messages.ts: healthCheckRequestSchema), ''
 * (the server) when it has none.
 */
export const healthRequestService = requestField('service');

/**
 * The serving status of each health service name, following the readiness HTTP's /readyz
 * answers (ModelRegistry.isReady: one rule, one place):
 * - "" and "inference.GRPCInferenceService": the server's readiness;
 * - a model's name: that model's readiness, as ModelReady without a version (an AVAILABLE
 *   active version), as Triton answers per model;
 * - anything else is unknown (Check: NOT_FOUND; Watch: SERVICE_UNKNOWN, and watched on).
 * From a shutdown signal on (`phase` no longer accepting traffic: the lame duck of
 * SHUTDOWN_DELAY_MS, as /readyz answers it) every known name is NOT_SERVING and the watches are
 * told at once; from `drain()` on the watches are ended, so that a shutdown does not wait for them.
 */
export class HealthStatus {
  private draining = false;
  private readonly watches = new Set<Watch>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly phase?: ServingPhase,
  ) {
    phase?.onChange(() => this.sendChanges());
  }

  /** The status of `service` now. */
  statusOf(service: string): ServingStatus {
    let subject: { isReady(): boolean };
    if (service === '' || service === INFERENCE_SERVICE_NAME) subject = this.registry;
    else if (this.registry.has(service))
      subject = { isReady: () => modelReadiness(this.registry, service).ready };
    else return 'SERVICE_UNKNOWN';
    // Draining (close() began): NOT_SERVING even before the phase moves (a server without one).
    return !this.draining && serverReadiness(this.phase, subject).ready ? 'SERVING' : 'NOT_SERVING';
  }

  /** Check's answer: the status, or NOT_FOUND for an unknown name (as the protocol says). */
  check(service: string): { status: ServingStatus } {
    const status = this.statusOf(service);
    if (status === 'SERVICE_UNKNOWN') {
      throw new NormserveError(
        'NOT_FOUND',
        `unknown health service ${quote(service)}: give "" or ${INFERENCE_SERVICE_NAME} (the server) or a model's name`,
      );
    }
    return { status };
  }

  /** Watch: sends the status now and at every change, until the client cancels or drain(). */
  watch(call: ServerWritableStream<unknown, unknown>): void {
    const service = healthRequestService(call.request);
    const watch: Watch = { call, service, last: this.statusOf(service) };
    call.write({ status: watch.last });
    if (this.draining) {
      call.end();
      return;
    }
    this.watches.add(watch);
    const stop = () => {
      this.watches.delete(watch);
      if (this.watches.size === 0) this.stopTimer();
    };
    call.once('cancelled', stop);
    call.once('finish', stop);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.sendChanges(), HEALTH_WATCH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** Shutting down: NOT_SERVING from now on; every watch is told and ended (status OK). */
  drain(): void {
    this.draining = true;
    this.sendChanges();
    for (const watch of [...this.watches]) watch.call.end();
    this.watches.clear();
    this.stopTimer();
  }

  private sendChanges(): void {
    for (const watch of this.watches) {
      const now = this.statusOf(watch.service);
      if (now === watch.last || watch.call.cancelled) continue;
      watch.last = now;
      watch.call.write({ status: now });
    }
  }

  private stopTimer(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }
}

interface Watch {
  call: ServerWritableStream<unknown, unknown>;
  service: string;
  last: ServingStatus;
}
