import type { Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { NormserveError } from '../errors/index.js';
import type { ServiceMetrics } from '../http/metrics.js';
import {
  type FromWorker,
  type MetricJson,
  metricJsonSchema,
  type PrimaryChannel,
  sendToWorker,
} from './cluster-messages.js';

/**
 * GET /metrics on a server with WORKERS > 1: whichever worker takes the scrape asks the primary,
 * which collects every live worker's metrics over IPC and answers with one view of the server.
 *
 * - Service metrics (requests, latencies, batch sizes, recalibrations, load failures) are summed
 *   over the workers with prom-client's own `AggregatorRegistry.aggregate`, each gauge combined by
 *   its `aggregator`.
 * - Process metrics (memory, CPU, event loop, GC, handles) stay per process, labelled
 *   `worker="<cluster worker id>"`, and `worker="primary"` for the primary itself.
 * - Counters never go backwards when a worker dies: the primary keeps the last values each worker
 *   reported and, when it exits, adds its counters and histograms to a "retired" bucket that every
 *   later scrape includes. What a worker counted after the last scrape before its death is lost
 *   (as in any process crash); its gauges and process metrics leave with it.
 * - A live worker that does not answer within COLLECT_TIMEOUT_MS (an event loop blocked by a huge
 *   batch) is counted with the last values it reported, so a slow worker does not make counters
 *   drop either; `normserve_cluster_workers_stale` says how many were.
 *
 * prom-client's `AggregatorRegistry.clusterMetrics()` is not used as such: it fails the whole
 * scrape when one worker does not answer within 5 s, forgets dead workers (counters drop), and
 * runs in the primary, which serves no HTTP here.
 */

/** How long the primary waits for each worker's metrics before using its last values. */
export const COLLECT_TIMEOUT_MS = 2_000;
/**
 * How long a worker waits for the primary's answer before failing the scrape (503
 * CLUSTER_PRIMARY_TIMEOUT with Retry-After: PrimaryChannel.request).
 */
export const SCRAPE_TIMEOUT_MS = 5_000;

interface Reported {
  seq: number;
  service: MetricJson[];
  process: MetricJson[];
}

interface LiveWorker {
  worker: Worker;
  last: Reported | undefined;
  /** collect requests waiting for this worker: request id → done */
  waiting: Map<number, () => void>;
}

/** The primary's half: the workers' last reports, the retired bucket, aggregation. */
export class ClusterMetricsPrimary {
  private readonly workers = new Map<number, LiveWorker>();
  private retired: MetricJson[] = [];
  private nextId = 0;
  private readonly own = new Registry();
  private readonly cluster = new Registry();
  private readonly liveGauge: Gauge;
  private readonly staleGauge: Gauge;
  private readonly exits: Counter;
  private readonly info: Gauge<'worker' | 'pid'>;

  constructor() {
    collectDefaultMetrics({ register: this.own, prefix: 'normserve_' });
    const registers = [this.cluster];
    this.liveGauge = new Gauge({
      name: 'normserve_cluster_workers',
      help: 'Live worker processes (listening, known to the primary)',
      registers,
    });
    this.staleGauge = new Gauge({
      name: 'normserve_cluster_workers_stale',
      help: `Live workers that did not answer this scrape within ${COLLECT_TIMEOUT_MS} ms: counted with the values they last reported (none, for a worker that never has)`,
      registers,
    });
    this.exits = new Counter({
      name: 'normserve_cluster_worker_exits_total',
      help: 'Worker processes that exited while the server ran (replaced by new ones); their counters live on in the totals',
      registers,
    });
    this.info = new Gauge({
      name: 'normserve_cluster_worker_info',
      help: 'One series per live worker: its cluster worker id (the worker label of process metrics) and pid (the pid of its log lines)',
      labelNames: ['worker', 'pid'],
      registers,
    });
  }

  /** A worker that has built its app and answers collect requests. */
  add(worker: Worker): void {
    if (!this.workers.has(worker.id))
      this.workers.set(worker.id, { worker, last: undefined, waiting: new Map() });
  }

  /**
   * A worker exited: its counters and histograms move to the retired bucket. Synchronous, so that
   * at every moment a worker's counts are either among the live ones or in the bucket, never both
   * or neither.
   */
  retire(worker: Worker, unexpected: boolean): void {
    const live = this.workers.get(worker.id);
    if (!live) return;
    this.workers.delete(worker.id);
    if (unexpected) this.exits.inc();
    for (const done of live.waiting.values()) done();
    const cumulative = (live.last?.service ?? []).filter(
      (m) => m.type === 'counter' || m.type === 'histogram',
    );
    if (cumulative.length > 0) this.retired = sumNow([this.retired, cumulative]);
  }

  /** The worker's answer to a collect request (kept if newer than what it reported before). */
  collected(worker: Worker, message: Extract<FromWorker, { type: 'normserve:collected' }>): void {
    const live = this.workers.get(worker.id);
    if (!live) return; // exited meanwhile: what it had reported before is retired
    if (live.last === undefined || message.seq > live.last.seq)
      live.last = { seq: message.seq, service: message.service, process: message.process };
    live.waiting.get(message.id)?.();
  }

  /**
   * The whole server's metrics in the Prometheus text format. Scrapes asked while one collects
   * share its answer: each would ask every worker for its registry and aggregate them all on the
   * primary's one thread, so 300 concurrent scrapes (anyone may GET /metrics) kept it busy for
   * seconds and the workers' other requests to it — an admin route's rate-limit count — timed
   * out, 503 CLUSTER_PRIMARY_TIMEOUT (attack review of 2026-12-06). A scrape that shares one
   * begun just before it gets values collected up to a collect timeout earlier, as a slow
   * worker's last values already are.
   */
  readonly scrape = shared(() => this.collectAll());

  private async collectAll(): Promise<string> {
    const answered = await Promise.all([...this.workers.values()].map((w) => this.collect(w)));
    // From here to the next await: one consistent view of live workers and the retired bucket.
    const parts: MetricJson[][] = [this.retired];
    this.info.reset();
    for (const live of this.workers.values()) {
      this.info.set({ worker: String(live.worker.id), pid: String(live.worker.process.pid) }, 1);
      if (!live.last) continue; // started, never reported: it has counted nothing yet
      parts.push(live.last.service, perProcess(live.last.process, String(live.worker.id)));
    }
    this.liveGauge.set(this.workers.size);
    this.staleGauge.set(answered.filter((ok) => !ok).length);
    parts.push(perProcess(await metricsJson(this.own), 'primary'));
    parts.push(await metricsJson(this.cluster));
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  /** Asks one worker; resolves true when it answered, false on timeout or exit. */
  private collect(live: LiveWorker): Promise<boolean> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), COLLECT_TIMEOUT_MS);
      const finish = (answered: boolean) => {
        clearTimeout(timer);
        live.waiting.delete(id);
        resolve(answered);
      };
      live.waiting.set(id, () => finish(true));
      sendToWorker(live.worker, { type: 'normserve:collect', id });
    });
  }
}

/**
 * Metrics without their NaN values: prom-client reports the event loop lag's mean and standard
 * deviation as NaN when no delay was sampled since the last collect (two scrapes in quick
 * succession), which the IPC schema, and JSON across IPC, cannot carry. Such a value says nothing.
 */
function withoutNaN<T extends { values: { value: number }[] }>(metrics: T[]): T[] {
  return metrics.map((m) => ({ ...m, values: m.values.filter((v) => !Number.isNaN(v.value)) }));
}

/** A registry's current values as the IPC schema types them. */
async function metricsJson(registry: Registry): Promise<MetricJson[]> {
  return metricJsonSchema.array().parse(withoutNaN(await registry.getMetricsAsJSON()));
}

/**
 * Counters and histograms of several reports summed into one (prom-client's aggregation). The
 * aggregated registry's metrics carry their values as properties, so this needs no await.
 */
function sumNow(parts: MetricJson[][]): MetricJson[] {
  const summed = parts.map((metrics) => metrics.map((m) => ({ ...m, aggregator: 'sum' as const })));
  return metricJsonSchema.array().parse(AggregatorRegistry.aggregate(summed).getMetricsAsArray());
}

/** Process metrics of one process: every value labelled with it, kept as they are. */
function perProcess(metrics: readonly MetricJson[], worker: string): MetricJson[] {
  return metrics.map((m) => ({
    ...m,
    // Each value now has its own label set, so "sum" passes it through unchanged (prom-client's
    // own choices, e.g. "omit" for the start time, would drop or merge per-process values).
    aggregator: 'sum',
    values: m.values.map((v) => ({ ...v, labels: { ...v.labels, worker } })),
  }));
}

/** A worker's half: answers the primary's collect requests with this process's metrics. */
export function answerCollectRequests(
  channel: PrimaryChannel,
  metrics: ServiceMetrics,
): (id: number) => void {
  let seq = 0;
  return (id) => {
    const mySeq = ++seq;
    Promise.all([
      metricsJson(metrics.serviceRegistry),
      metrics.processMetricsJson().then((json) => metricJsonSchema.array().parse(withoutNaN(json))),
    ])
      .then(([service, process]) =>
        channel.send({ type: 'normserve:collected', id, seq: mySeq, service, process }),
      )
      .catch(() => undefined); // the primary uses the last values it has
  };
}

/**
 * GET /metrics of a worker: the server's metrics from the primary. The scrapes a worker takes while
 * it waits for the primary's answer share that answer (one request in flight per worker), for the
 * reason ClusterMetricsPrimary.scrape gives.
 */
export function clusterScrape(channel: PrimaryChannel): () => Promise<string> {
  const ask = async () => {
    let answer: Awaited<ReturnType<typeof channel.request<'normserve:scraped'>>>;
    try {
      answer = await channel.request(
        { type: 'normserve:scrape' },
        'normserve:scraped',
        SCRAPE_TIMEOUT_MS,
      );
    } catch (e) {
      // No answer in time keeps its code and Retry-After (CLUSTER_PRIMARY_TIMEOUT); a wrong one is ours.
      if (e instanceof NormserveError)
        throw new NormserveError(e.code, `cluster metrics are unavailable: ${e.message}`, {
          retryAfterSeconds: e.retryAfterSeconds,
          cause: e,
        });
      throw new NormserveError('INTERNAL', 'cluster metrics are unavailable', { cause: e });
    }
    if (answer.text === undefined)
      throw new NormserveError('INTERNAL', `cluster metrics failed: ${answer.error ?? 'no text'}`);
    return answer.text;
  };
  return shared(ask);
}

/**
 * `run`, whose callers while it runs share its one promise (its result or its error); a call after
 * it has settled runs it again. The single flight of a scrape (ClusterMetricsPrimary.scrape).
 */
function shared<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    running ??= run().finally(() => {
      running = undefined;
    });
    return running;
  };
}
