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
 *
 * A cluster worker counts only the signals its primary relays over IPC (`normserve:signal`,
 * cluster-primary.ts), one message per signal the primary got. A signal sent to the whole
 * process group — a terminal's Ctrl-C, `kill -TERM -PGID`, systemd's default
 * KillMode=control-group — reaches each worker directly as well: counted too, one signal would be
 * two (the drain at once, or exit 1 mid-drain with the requests in flight lost). So a worker
 * ignores its own SIGTERM and SIGINT while its IPC channel is open. Its primary gone, node:cluster
 * ends the worker at once (its `disconnect` handler); its own signals count again should it
 * still run.
 */
import type pino from 'pino';
import type { ServingPhase } from '../service/index.js';
import type { PrimaryChannel } from './cluster-messages.js';
import { exceptCopies } from './on-signal.js';

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;
type ShutdownSignal = (typeof SIGNALS)[number];

export interface LameDuckOptions {
  phase: ServingPhase;
  delayMs: number;
  /** Starts the drain (close-with-grace's `close`); called once. */
  drain: (signal: NodeJS.Signals) => void;
  logger: pino.Logger;
  /** A cluster worker's channel to its primary: the signals counted are the primary's relays. */
  channel?: PrimaryChannel;
}

/**
 * A cluster worker, from its start: its own SIGTERM and SIGINT are not acted on while its primary
 * is there (the primary relays them: see above); until lameDuckOnSignal takes the relays over,
 * the channel's default ends the worker.
 */
export function relayedSignalsOnly(channel: PrimaryChannel, logger: pino.Logger): void {
  for (const name of SIGNALS)
    process.on(name, (signal: ShutdownSignal) => {
      if (!process.connected) return channel.onSignal(signal);
      logger.debug(
        { signal },
        'own signal ignored: the cluster primary relays the signals it gets',
      );
    });
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
      case 'starting':
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
  if (options.channel) options.channel.onSignal = onSignal;
  else {
    // (The primary leaves a worker's copies out before it relays them.)
    const listener = exceptCopies(onSignal, logger);
    for (const signal of SIGNALS) process.on(signal, listener);
  }
}
