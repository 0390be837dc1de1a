/**
 * Where a server process is in its life as load balancers see it, one signal for every transport:
 * the HTTP readiness routes read it, and so can gRPC's health service.
 *
 * - `starting` (the server's process only; ServingPhase('starting')): HTTP listens, but not every
 *   transport does yet (gRPC binds after HTTP, its code loaded then). Requests are served;
 *   readiness answers 503 with reason `starting`, so that no load balancer sends a gRPC client to
 *   a port that still refuses it.
 * - `serving`: readiness follows the models (ModelRegistry.isReady).
 * - `lame-duck`: a SIGTERM/SIGINT came and SHUTDOWN_DELAY_MS runs. Kubernetes removes a
 *   terminating pod from its Service's endpoints asynchronously, after the signal: until every
 *   node's kube-proxy and every ingress has caught up, traffic still arrives. The process serves it
 *   as before but answers readiness 503, so that whatever still probes it takes it out too.
 * - `draining`: it stops listening and finishes what is in flight (http/connection-drain.ts).
 *
 * The phase only moves forward.
 */
export const SERVING_PHASES = ['starting', 'serving', 'lame-duck', 'draining'] as const;
export type ServingPhaseName = (typeof SERVING_PHASES)[number];

/** Why the readiness routes answer 503 in the lame-duck and draining phases. */
export const SHUTTING_DOWN_REASON = 'shutting_down' as const;

/** Why the readiness routes answer 503 before every transport listens. */
export const STARTING_REASON = 'starting' as const;

/**
 * The Retry-After of SHUTTING_DOWN, in seconds. This instance will not come back, but the URL, a
 * Service in front of several, will: RFC 9110 §10.2.3's "how long the user agent ought to wait
 * before making a follow-up request". One second lets the endpoint list drop this instance (its
 * listener is closing; a new connection to it is refused) so that the retry reaches another one;
 * Retry-After-aware retry libraries (urllib3's Retry, for one) otherwise use their own backoff.
 */
export const SHUTTING_DOWN_RETRY_AFTER_SECONDS = 1;

/**
 * What the drain keeps of SHUTDOWN_TIMEOUT_MS for its last steps — the recalibration jobs it
 * interrupts settling their records (cli/shutdown-budget.ts), the gRPC answers no client has yet read
 * being cancelled (grpc-server.ts) — before close-with-grace's exit 1: a slice of work (tens of
 * milliseconds), a lock's release and a few synced file writes; a quarter of the budget when that
 * is less (SHUTDOWN_TIMEOUT_MS may be as low as 100 ms).
 */
export const DRAIN_RESERVE_MS = 1_000;

/** How long into a drain of `shutdownTimeoutMs` its last steps start (DRAIN_RESERVE_MS). */
export function drainLastStepsMs(shutdownTimeoutMs: number): number {
  return shutdownTimeoutMs - Math.min(DRAIN_RESERVE_MS, Math.floor(shutdownTimeoutMs / 4));
}

export class ServingPhase {
  private phase: ServingPhaseName;
  private readonly listeners = new Set<(phase: ServingPhaseName) => void>();

  /** `starting` until every transport listens (enter('serving')); tests' apps begin serving. */
  constructor(initial: 'starting' | 'serving' = 'serving') {
    this.phase = initial;
  }

  get current(): ServingPhaseName {
    return this.phase;
  }

  /** False from the shutdown signal on: readiness is 503 whatever the models. */
  get acceptingTraffic(): boolean {
    return this.phase === 'starting' || this.phase === 'serving';
  }

  /** Moves to `phase` if it is later than the current one (else nothing), telling the listeners. */
  enter(phase: ServingPhaseName): void {
    if (SERVING_PHASES.indexOf(phase) <= SERVING_PHASES.indexOf(this.phase)) return;
    this.phase = phase;
    for (const listener of this.listeners) listener(phase);
  }

  /** Calls `listener` with each later phase; returns the function that stops it. */
  onChange(listener: (phase: ServingPhaseName) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** A server's readiness on every transport: /readyz, /v2/health/ready, ServerReady, gRPC health. */
export interface Readiness {
  ready: boolean;
  /** Why not ready, when it is the shutdown or the start rather than the models. */
  reason?: typeof SHUTTING_DOWN_REASON | typeof STARTING_REASON;
}

/**
 * The readiness rule: from the shutdown signal on (`phase` not accepting traffic), or before every
 * transport listens (`starting`), not ready whatever the models; otherwise as `subject` (the
 * registry: every model; or one model) is. Without a phase (a test's app, an offline tool) the
 * process is serving.
 */
export function serverReadiness(
  phase: Pick<ServingPhase, 'acceptingTraffic' | 'current'> | undefined,
  subject: { isReady(): boolean },
): Readiness {
  if (phase !== undefined && !phase.acceptingTraffic)
    return { ready: false, reason: SHUTTING_DOWN_REASON };
  if (phase?.current === 'starting') return { ready: false, reason: STARTING_REASON };
  return { ready: subject.isReady() };
}
