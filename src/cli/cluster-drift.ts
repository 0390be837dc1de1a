import type { Worker } from 'node:cluster';
import type { DriftService } from '../service/index.js';
import type { FromWorker, PrimaryChannel } from './cluster-messages.js';
import { sendToWorker } from './cluster-messages.js';

/**
 * Live drift with WORKERS > 1: every worker sees only the connections it accepted, so each one
 * shares what it saw and merges what the others saw, and one of them acts on it.
 *
 * - Every DRIFT_SHARE_INTERVAL_MS a worker sends the moments its own traffic added since its last
 *   share (per version and time window: count, mean, M2 per channel — deltas, merged with Chan's
 *   pairwise update, so nothing is counted twice); the primary relays them to every other live
 *   worker. Each worker's drift report, gauges and recommendation then cover all the traffic,
 *   at most one interval behind the others' (what a worker saw since its last share is lost if
 *   it dies, as its unscraped counters are).
 * - The primary names one worker the decider (the longest-lived): only it keeps the traffic
 *   sample and acts on AUTO_RECALIBRATE (logs, counts, recalibrates, shadow-runs a candidate), so
 *   a version is recalibrated automatically once, not once per worker; its automatic recalibration
 *   state travels with its shares, so every worker reports it. When the decider exits the primary
 *   names another, which inherits the versions already recalibrated. A new version reaches the
 *   other workers through the repository, like an admin's (MODEL_POLL_INTERVAL_MS).
 */
export const DRIFT_SHARE_INTERVAL_MS = 1_000;

/** The primary's half: relays shares and names the decider. */
export class ClusterDriftPrimary {
  /** Live workers that are ready, oldest first; the first one decides. */
  private readonly ready: Worker[] = [];

  /** A worker is ready (listening): the first one decides; the others are told they do not. */
  add(worker: Worker): void {
    if (this.ready.some((w) => w.id === worker.id)) return;
    this.ready.push(worker);
    sendToWorker(worker, { type: 'normserve:drift-decider', decides: this.ready[0] === worker });
  }

  /** A worker exited: when it decided, the next oldest does now. */
  retire(worker: Worker): void {
    const at = this.ready.findIndex((w) => w.id === worker.id);
    if (at < 0) return;
    this.ready.splice(at, 1);
    const next = this.ready[0];
    if (at === 0 && next) sendToWorker(next, { type: 'normserve:drift-decider', decides: true });
  }

  /** A worker's share, to every other live worker. */
  shared(from: Worker, message: Extract<FromWorker, { type: 'normserve:drift-share' }>): void {
    for (const w of this.ready)
      if (w.id !== from.id)
        sendToWorker(w, { type: 'normserve:drift-shared', share: message.share });
  }
}

/**
 * A worker's half: shares what its drift service saw every DRIFT_SHARE_INTERVAL_MS, merges the
 * others' shares and becomes the decider when told. Returns a function that stops sharing.
 */
export function shareDrift(channel: PrimaryChannel, drift: DriftService): () => void {
  channel.onNotice = (notice) => {
    if (notice.type === 'normserve:drift-shared') drift.mergeShare(notice.share);
    else drift.setDecides(notice.decides);
  };
  const timer = setInterval(() => {
    const share = drift.takeShare();
    if (share) channel.send({ type: 'normserve:drift-share', share });
  }, DRIFT_SHARE_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
