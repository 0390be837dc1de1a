/**
 * WORKERS > 1: the cluster primary. It forks the workers (server-worker.ts), replaces those that
 * die, answers their IPC requests (the server's metrics and admin rate limit) and drains them all
 * on SIGTERM/SIGINT, relaying each signal it gets to every worker over IPC.
 */
import cluster, { type Worker } from 'node:cluster';
import pino from 'pino';
import { FixedWindowCounter } from '../http/fixed-window-counter.js';
import type { ServerConfig } from '../service/server-config.js';
import { adminTokenOf } from './admin-token.js';
import { ClusterDriftPrimary } from './cluster-drift.js';
import { ListenerTakeover } from './cluster-listener.js';
import { onWorkerMessage, sendToWorker } from './cluster-messages.js';
import { ClusterMetricsPrimary } from './cluster-metrics.js';
import { ClusterModelsPrimary } from './cluster-models.js';
import { answerRateLimit } from './cluster-rate-limit.js';
import { startModelsEnvironment } from './cluster-start-models.js';
import { exceptCopies } from './on-signal.js';
import { RESCAN_SIGNAL } from './rescan-on-hangup.js';
import { WorkerDeaths } from './worker-deaths.js';

/**
 * How long after the workers' own bound (SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS) the primary
 * kills those still running: a pod's termination grace period must cover the three.
 */
export const WORKER_KILL_MARGIN_MS = 2_000;

/**
 * The primary's answers to its workers: the whole server's metrics (cluster-metrics.ts), the
 * server's one admin rate limit (cluster-rate-limit.ts), the workers' drift shares and decider
 * (cluster-drift.ts) and a worker's model changes, refreshed by every other worker before its call
 * returns (cluster-models.ts).
 */
function answerWorkers(
  metrics: ClusterMetricsPrimary,
  drift: ClusterDriftPrimary,
  models: ClusterModelsPrimary,
  takeover: ListenerTakeover,
  logger: pino.Logger,
  deaths: WorkerDeaths,
  startFailed: (worker: Worker, message: string) => void,
): void {
  const rateLimits = new FixedWindowCounter();
  onWorkerMessage((worker, message, handle) => {
    switch (message.type) {
      case 'normserve:ready':
        deaths.ready();
        takeover.ready(worker);
        metrics.add(worker);
        drift.add(worker);
        models.add(worker);
        break;
      case 'normserve:start-failed':
        startFailed(worker, message.message);
        break;
      case 'normserve:drift-share':
        drift.shared(worker, message);
        break;
      case 'normserve:sample-request':
        drift.requested(worker, message);
        break;
      case 'normserve:sample-answer':
        drift.answered(worker, message);
        break;
      case 'normserve:model-written':
        models.written(worker, message);
        break;
      case 'normserve:model-refreshed':
        models.refreshed(worker, message);
        break;
      case 'normserve:collected':
        metrics.collected(worker, message);
        break;
      case 'normserve:scrape':
        metrics.scrape().then(
          (text) => sendToWorker(worker, { type: 'normserve:scraped', id: message.id, text }),
          (e: unknown) => {
            logger.error({ err: e }, 'collecting the cluster metrics failed');
            sendToWorker(worker, { type: 'normserve:scraped', id: message.id, error: String(e) });
          },
        );
        break;
      case 'normserve:rate-limit':
        void answerRateLimit(rateLimits, worker, message);
        break;
      case 'normserve:stop-listening':
        takeover.stopListening(worker, message.id);
        break;
      case 'normserve:listener':
        takeover.listener(worker, message.id, handle);
        break;
      case 'normserve:listener-closed':
        takeover.listenerClosed(worker);
        break;
    }
  });
}

/**
 * WORKERS > 1: a primary that forks that many server processes sharing the port (node:cluster
 * distributes connections round-robin). Every worker loads the repository and watches it; a
 * recalibration, activation or version delete made through one worker is refreshed by the others
 * before the call returns (cluster-models.ts; the poll, MODEL_POLL_INTERVAL_MS, catches up on a
 * worker that did not confirm). SIGTERM/SIGINT drain every worker; a worker that dies otherwise is
 * replaced.
 */
export async function runPrimary(config: ServerConfig): Promise<void> {
  const logger = pino({ level: config.LOG_LEVEL });
  // The primary loads no model and leaves the repository's temporary leftovers to the workers
  // (each removes those of dead writers as it starts): it imports only what forking and the IPC
  // answers need, so the workers start sooner (issue 13: a restart in about a second).
  // One token for all workers, logged once: the workers read it from their environment.
  if (config.ADMIN_TOKEN === undefined)
    process.env.ADMIN_TOKEN = adminTokenOf(config, logger, 'server');

  const clusterMetrics = new ClusterMetricsPrimary();
  const clusterDrift = new ClusterDriftPrimary();
  const clusterModels = new ClusterModelsPrimary();
  const takeover = new ListenerTakeover(logger);
  /** Whether a worker has ever said it listens (`normserve:ready`), and the recent deaths. */
  const deaths = new WorkerDeaths();
  // Why a worker could not start, by worker id, until its death is decided: the line is printed
  // only if the server stops for it (every worker fails the same way, a taken port: once), and
  // logged if the server goes on (another worker got ready meanwhile, or a replacement failed).
  const startFailures = new Map<number, string>();
  let reported = false;
  answerWorkers(
    clusterMetrics,
    clusterDrift,
    clusterModels,
    takeover,
    logger,
    deaths,
    (worker, message) => {
      startFailures.set(worker.id, message);
    },
  );

  let stopping = false;
  let failed = false;
  // Workers accept from the shared socket themselves (SCHED_NONE) rather than through the
  // primary's round-robin: a worker that closes stops accepting at once, so during shutdown no
  // connection is handed to a worker that is already closing (it would hang until that worker
  // exits). The kernel then balances connections by which worker is free to accept. The last
  // worker to stop listening hands the socket to the primary, which closes it without resetting
  // the connections queued on it (cluster-listener.ts).
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // The models that count for the server's strict readiness, as the first worker to listen saw
  // them: a worker forked later (a replacement) counts the same ones (cluster-start-models.ts).
  let startModels: string[] | undefined;
  onWorkerMessage((_worker, message) => {
    if (message.type === 'normserve:ready') startModels ??= message.startModels;
  });
  const fork = (): Worker =>
    cluster.fork(startModels ? startModelsEnvironment(startModels) : undefined);
  const decide = (worker: Worker, code: number | null, signal: string | null) => {
    const reason = startFailures.get(worker.id);
    startFailures.delete(worker.id);
    if (stopping) return;
    const verdict = deaths.died(Date.now());
    if (verdict === 'start-failed' && reason !== undefined && !reported) {
      reported = true;
      process.stderr.write(`normserve: ${reason}\n`);
    } else if (reason !== undefined) {
      logger.error({ worker: worker.process.pid, reason }, 'a worker could not start');
    }
    if (verdict === 'start-failed') {
      // No worker has listened yet: it printed why (a taken port: EXIT_START_FAILED) or died
      // before it listened; another would fail the same way, so the server stops rather than
      // replacing it in a loop.
      logger.fatal(
        { worker: worker.process.pid, code, signal },
        'a worker could not start; stopping',
      );
      failed = true;
      stop('SIGTERM');
      return;
    }
    if (verdict === 'crash-loop') {
      logger.fatal('workers keep dying; stopping');
      // Drained like a SIGTERM: exiting at once would leave the others writing to a closed IPC
      // channel (EPIPE) until they noticed.
      failed = true;
      stop('SIGTERM');
      return;
    }
    logger.error({ worker: worker.process.pid, code, signal }, 'worker died; starting a new one');
    fork();
  };
  cluster.on('exit', (worker, code, signal) => {
    // Its counters join the retired bucket, so the server's totals never go backwards.
    clusterMetrics.retire(worker, !stopping);
    clusterDrift.retire(worker);
    clusterModels.retire(worker);
    takeover.retire(worker);
    // The child's exit can be seen before the primary has read what it sent last (its
    // `start-failed` line): decided once its IPC channel has closed, every message read.
    if (worker.isConnected()) worker.once('disconnect', () => decide(worker, code, signal));
    else decide(worker, code, signal);
  });
  for (let i = 0; i < config.WORKERS; i++) fork();
  logger.info(
    { workers: config.WORKERS, port: config.PORT, host: config.HOST },
    'primary started workers',
  );

  // Each signal the primary gets reaches every worker as one IPC message, which the worker counts
  // as that signal (cli/lame-duck.ts): the workers ignore their own while the primary is there, so
  // a signal to the whole process group counts once, here.
  const relayedSignals: ('SIGINT' | 'SIGTERM')[] = [];
  const relay = (signal: NodeJS.Signals, workers: readonly Worker[]) => {
    const relayed = signal === 'SIGINT' ? 'SIGINT' : 'SIGTERM';
    relayedSignals.push(relayed);
    const seq = relayedSignals.length;
    for (const worker of workers)
      sendToWorker(worker, { type: 'normserve:signal', signal: relayed, seq });
  };
  // A worker forked just before the first signal (replacing one that died) was still loading when
  // the signals went out and did not listen for them yet (its IPC channel starts with it): once it
  // says it is ready, it is given every signal relayed so far, so it drains with the others
  // instead of serving on until the primary's deadline kills it. A worker that had counted them
  // (a signal while it was starting) skips them by their `seq`: counted twice, one SIGTERM ended
  // SHUTDOWN_DELAY_MS as a second would.
  const ready = new WeakSet<Worker>();
  onWorkerMessage((worker, message) => {
    if (message.type !== 'normserve:ready') return;
    ready.add(worker);
    for (const [i, signal] of relayedSignals.entries())
      sendToWorker(worker, { type: 'normserve:signal', signal, seq: i + 1 });
  });
  const alive = () =>
    Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A repeated signal ends the workers' lame-duck phase (SHUTDOWN_DELAY_MS) and starts their
      // drain at once; one more during the drain makes them exit 1 (cli/lame-duck.ts).
      logger.info({ signal }, 'repeated signal: relayed to the workers');
      relay(signal, alive());
      return;
    }
    stopping = true;
    logger.info({ signal }, 'stopping workers');
    // A worker that has exited but whose channel has not closed yet is still listed: it will not
    // exit again.
    const workers = alive();
    let clean = true;
    let left = workers.length;
    const done = () => {
      logger.info({ clean }, 'all workers stopped');
      process.exit(clean && !failed ? 0 : 1);
    };
    if (left === 0) done();
    for (const worker of workers)
      worker.once('exit', (code) => {
        if (code !== 0) clean = false;
        if (--left === 0) done();
      });
    // Every worker gets the signal in this one loop, so all enter the lame-duck phase (readiness
    // 503, still serving) together, and start their drains together SHUTDOWN_DELAY_MS later.
    relay(signal, workers);
    setTimeout(
      () => {
        logger.error('workers did not stop in time; killing them');
        for (const worker of workers) worker.process.kill('SIGKILL');
        process.exit(1);
      },
      config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_TIMEOUT_MS + WORKER_KILL_MARGIN_MS,
    ).unref();
  };
  // A copy of the signal just counted (`npm start` forwards the one its process group got) is not
  // a repeated signal: relayed, it ended the workers' drain with exit 1.
  const onSignal = exceptCopies(stop, logger);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGHUP (rescan-on-hangup.ts) reaches every listening worker, and each scans the repository (a
  // worker still starting scans when it starts). One sent to the whole group reaches a worker
  // twice: a scan asked for while one runs shares it.
  process.on(RESCAN_SIGNAL, () => {
    if (stopping) return;
    logger.info({ signal: RESCAN_SIGNAL }, 'relayed to the workers: scan the model repository');
    for (const worker of alive()) if (ready.has(worker)) worker.process.kill(RESCAN_SIGNAL);
  });
}
