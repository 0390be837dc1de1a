/**
 * SIGTERM and SIGINT: the lame-duck phase, then the drain.
 *
 * Kubernetes sends SIGTERM while it removes the pod from its Service's endpoints, asynchronously:
 * kube-proxy on every node and any ingress keep sending traffic for a moment (seconds on a busy
 * cluster). A server that stopped listening at once refused that traffic. So for `delayMs`
 * (SHUTDOWN_DELAY_MS) the process serves as before while its readiness routes answer 503
 * (service/serving-phase.ts); then `drain` runs the existing graceful close (close-with-grace,
 * bounded by SHUTDOWN_TIMEOUT_MS from there).
 *
 * A second SIGTERM or SIGINT during the delay ends it: the drain starts at once (an operator who
 * repeats the signal wants the process gone sooner, not killed mid-request). One during the drain
 * exits 1 at once, as close-with-grace does with a second signal.
 */
import type pino from 'pino';
import type { ServingPhase } from '../service/index.js';

export interface LameDuckOptions {
  phase: ServingPhase;
  delayMs: number;
  /** Starts the drain (close-with-grace's `close`); called once. */
  drain: (signal: NodeJS.Signals) => void;
  logger: pino.Logger;
  /**
   * The signals that start the shutdown. A cluster worker listens to SIGTERM only and ignores
   * SIGINT: the primary relays every SIGTERM and SIGINT it gets as a SIGTERM, and a terminal's
   * Ctrl-C, sent to the whole process group, would otherwise reach each worker twice (its own
   * SIGINT and the primary's SIGTERM) and count as a repeated signal.
   */
  signals: readonly NodeJS.Signals[];
  ignored?: readonly NodeJS.Signals[];
}

/** Installs the handlers; they stay for the process's life. */
export function lameDuckOnSignal(options: LameDuckOptions): void {
  const { phase, delayMs, drain, logger } = options;
  let timer: NodeJS.Timeout | undefined;
  let first: NodeJS.Signals | undefined;
  const startDrain = () => {
    clearTimeout(timer);
    // Another cause (an uncaught error, another signal) may have started it meanwhile.
    if (phase.current === 'lame-duck') drain(first ?? 'SIGTERM');
  };
  const onSignal = (signal: NodeJS.Signals) => {
    switch (phase.current) {
      case 'serving':
        first = signal;
        phase.enter('lame-duck');
        if (delayMs === 0) return startDrain();
        logger.info(
          { signal, delayMs },
          'shutting down: serving on while readiness answers 503, then draining',
        );
        timer = setTimeout(startDrain, delayMs);
        return;
      case 'lame-duck':
        logger.info({ signal }, 'repeated signal: draining now');
        return startDrain();
      case 'draining':
        logger.error({ signal }, `${signal} during the drain: exiting`);
        process.exit(1);
    }
  };
  for (const signal of options.signals) process.on(signal, onSignal);
  for (const signal of options.ignored ?? []) process.on(signal, () => undefined);
}
