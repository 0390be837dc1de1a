import type { Worker } from 'node:cluster';
import type { DriftService, LeftOut, PeerSampleCollector } from '../service/index.js';
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
 * - The primary names one worker the decider (the longest-lived): only it acts on
 *   AUTO_RECALIBRATE (logs, counts, recalibrates, shadow-runs a candidate), so a version is
 *   recalibrated automatically once, not once per worker; its automatic recalibration state
 *   travels with its shares, so every worker reports it. When the decider exits the primary
 *   names another, which inherits the versions already recalibrated. A new version reaches the
 *   other workers before the recalibration returns, like an admin's (cluster-models.ts).
 * - Every worker keeps its own traffic sample (bounded, per model, of the active version) and
 *   says in its shares how many rows it holds and stands for. When the cluster's samples hold
 *   AUTO_RECALIBRATE_MIN_ROWS rows and the drift is recommended, the decider asks the primary for
 *   the others' samples (`sample-request`); the primary asks every other ready worker
 *   (`sample-ask`), relays each answer as it comes (`sample-part`) and, when all answered or
 *   SAMPLE_COLLECT_TIMEOUT_MS passed, says who was left out (`sample-done`). The decider folds
 *   the samples into one uniform sample of the union (drift/sample-union.ts). Rows travel only
 *   over this IPC, only then, and are never written anywhere.
 */
export const DRIFT_SHARE_INTERVAL_MS = 1_000;
/** How long the primary waits for the other workers' traffic samples. */
export const SAMPLE_COLLECT_TIMEOUT_MS = 5_000;
/** How long the decider waits for the primary's `sample-done` (the primary's wait, and slack). */
const SAMPLE_REQUEST_TIMEOUT_MS = SAMPLE_COLLECT_TIMEOUT_MS + 5_000;

type FromWorkerOf<T extends FromWorker['type']> = Extract<FromWorker, { type: T }>;

/** A decider's sample request the primary is collecting answers for. */
interface Collection {
  decider: Worker;
  requestId: number;
  asked: number;
  /** Workers that have not answered yet. */
  waiting: Set<number>;
  leftOut: Required<LeftOut>[];
  timer: NodeJS.Timeout;
}

/** The primary's half: relays shares, names the decider, collects traffic samples for it. */
export class ClusterDriftPrimary {
  /** Live workers that are ready, oldest first; the first one decides. */
  private readonly ready: Worker[] = [];
  private readonly collections = new Map<number, Collection>();
  private nextId = 0;

  constructor(private readonly collectTimeoutMs = SAMPLE_COLLECT_TIMEOUT_MS) {}

  /** A worker is ready (listening): the first one decides; the others are told they do not. */
  add(worker: Worker): void {
    if (this.ready.some((w) => w.id === worker.id)) return;
    this.ready.push(worker);
    sendToWorker(worker, { type: 'normserve:drift-decider', decides: this.ready[0] === worker });
  }

  /** A worker exited: when it decided, the next oldest does now; it answers no collection. */
  retire(worker: Worker): void {
    const at = this.ready.findIndex((w) => w.id === worker.id);
    if (at < 0) return;
    this.ready.splice(at, 1);
    const next = this.ready[0];
    if (at === 0 && next) sendToWorker(next, { type: 'normserve:drift-decider', decides: true });
    for (const [id, c] of this.collections) {
      if (c.decider.id === worker.id) this.finish(id, c, false);
      else if (c.waiting.delete(worker.id)) {
        c.leftOut.push({ worker: worker.id, reason: 'exited' });
        if (c.waiting.size === 0) this.finish(id, c);
      }
    }
  }

  /** A worker's share, to every other live worker. */
  shared(from: Worker, message: FromWorkerOf<'normserve:drift-share'>): void {
    for (const w of this.ready)
      if (w.id !== from.id)
        sendToWorker(w, { type: 'normserve:drift-shared', from: from.id, share: message.share });
  }

  /** The decider asks for the other workers' traffic samples of a model. */
  requested(decider: Worker, message: FromWorkerOf<'normserve:sample-request'>): void {
    const others = this.ready.filter((w) => w.id !== decider.id);
    const id = this.nextId++;
    const collection: Collection = {
      decider,
      requestId: message.id,
      asked: others.length,
      waiting: new Set(others.map((w) => w.id)),
      leftOut: [],
      timer: setTimeout(() => {
        for (const worker of collection.waiting)
          collection.leftOut.push({
            worker,
            reason: `no answer within ${this.collectTimeoutMs} ms`,
          });
        this.finish(id, collection);
      }, this.collectTimeoutMs),
    };
    this.collections.set(id, collection);
    if (others.length === 0) this.finish(id, collection);
    for (const w of others)
      sendToWorker(w, {
        type: 'normserve:sample-ask',
        id,
        model: message.model,
        kind: message.kind,
      });
  }

  /** A worker's sample: relayed to the decider at once (the primary keeps no rows). */
  answered(from: Worker, message: FromWorkerOf<'normserve:sample-answer'>): void {
    const c = this.collections.get(message.id);
    if (!c?.waiting.delete(from.id)) return; // late (left out already) or unasked
    sendToWorker(c.decider, {
      type: 'normserve:sample-part',
      id: c.requestId,
      worker: from.id,
      sample: message.sample,
    });
    if (c.waiting.size === 0) this.finish(message.id, c);
  }

  private finish(id: number, c: Collection, answer = true): void {
    clearTimeout(c.timer);
    this.collections.delete(id);
    if (answer)
      sendToWorker(c.decider, {
        type: 'normserve:sample-done',
        id: c.requestId,
        asked: c.asked,
        left_out: c.leftOut,
      });
  }
}

/**
 * A worker's half: shares what its drift service saw every DRIFT_SHARE_INTERVAL_MS, merges the
 * others' shares, becomes the decider when told, answers the primary's requests for its traffic
 * sample and, deciding, collects the others'. Returns a function that stops sharing.
 */
export function shareDrift(channel: PrimaryChannel, drift: DriftService): () => void {
  /** This worker's sample requests waiting for parts: request id → handler. */
  const collecting = new Map<number, Parameters<PeerSampleCollector>[2]>();
  channel.onNotice = (notice) => {
    switch (notice.type) {
      case 'normserve:drift-shared':
        drift.mergeShare(notice.share, notice.from);
        break;
      case 'normserve:drift-decider':
        drift.setDecides(notice.decides);
        break;
      case 'normserve:sample-ask':
        channel.send({
          type: 'normserve:sample-answer',
          id: notice.id,
          sample:
            notice.kind === 'recent'
              ? drift.recentSample(notice.model)
              : drift.trafficSample(notice.model),
        });
        break;
      case 'normserve:sample-part':
        collecting.get(notice.id)?.(notice.worker, notice.sample);
        break;
    }
  };
  drift.usePeerSamples(async (model, version, onSample, kind = 'traffic') => {
    let id: number | undefined;
    try {
      const done = await channel.request(
        { type: 'normserve:sample-request', model, version, kind },
        'normserve:sample-done',
        SAMPLE_REQUEST_TIMEOUT_MS,
        (requestId) => {
          id = requestId;
          collecting.set(requestId, onSample);
        },
      );
      return { asked: done.asked, leftOut: done.left_out };
    } finally {
      if (id !== undefined) collecting.delete(id);
    }
  });
  const share = () => {
    const taken = drift.takeShare();
    if (taken) channel.send({ type: 'normserve:drift-share', share: taken });
  };
  // A traffic sample grew by SAMPLE_GREW_ROWS: shared after the request's turn (once per turn).
  let pending = false;
  drift.onSampleGrew(() => {
    if (pending) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      share();
    });
  });
  const timer = setInterval(share, DRIFT_SHARE_INTERVAL_MS);
  timer.unref();
  return () => clearInterval(timer);
}
