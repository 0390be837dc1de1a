import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type {
  BatchReport,
  DriftService,
  InferenceObservation,
  ModelRegistry,
} from '../service/index.js';
import { BoundCounter, BoundHistogram, removeSeries } from './metric-cells.js';

const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];
const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * Prometheus metrics of one app instance (its own registry, so tests can build several apps).
 * Route labels are route patterns, never raw URLs, to keep cardinality bounded.
 *
 * `registry` is what this process serves: the service metrics and the process's runtime metrics
 * (memory, CPU, event loop, GC). The service metrics are also in `serviceRegistry`, because a
 * server with WORKERS > 1 answers GET /metrics with one view of all its processes
 * (cli/cluster-metrics.ts): service metrics summed across workers — counters and histograms add
 * up, each gauge says how it combines (prom-client's `aggregator`) — and the process metrics kept
 * apart per worker with a `worker` label.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  /** The service metrics alone (every metric registered through `registers` below). */
  readonly serviceRegistry = new Registry();
  readonly requests: Counter<'method' | 'route' | 'status' | 'model' | 'version'>;
  readonly requestDuration: Histogram<'method' | 'route' | 'status'>;
  readonly inferenceDuration: Histogram<'model' | 'version' | 'fused'>;
  readonly batchSize: Histogram<'model'>;
  readonly loadFailures: Counter<'model'>;
  readonly activeVersion: Gauge<'model'>;
  readonly modelReady: Gauge<'model'>;
  readonly recalibrations: Counter<'model' | 'mode' | 'outcome'>;
  readonly connectionsDropped: Counter;
  /** Requests refused with OVERLOADED: MAX_QUEUED_REQUESTS already waited for the engine. */
  readonly overloaded: Counter<'model'>;
  readonly activeRecordInvalid: Gauge<'model'>;
  readonly repositoryScans: Counter;
  private models: Pick<ModelRegistry, 'list' | 'scans'> | undefined;
  readonly dynamicBatchRows: Histogram<'model'>;
  readonly dynamicBatchRequests: Histogram<'model'>;
  readonly batchQueueDelay: Histogram<'model'>;
  readonly grpcRequests: Counter<'method' | 'code' | 'model'>;
  readonly grpcDuration: Histogram<'method' | 'code'>;
  readonly driftScore: Gauge<'model' | 'version'>;
  readonly driftLayerScore: Gauge<'model' | 'version' | 'layer'>;
  readonly driftRows: Gauge<'model' | 'version'>;
  readonly driftRecommended: Gauge<'model' | 'version'>;
  readonly autoRecalibrations: Counter<'model' | 'action' | 'outcome'>;
  /** Rows an automatic recalibration's screening left out of a traffic sample (docs/drift.md). */
  readonly autoOutlierRows: Counter<'model'>;
  private drift: DriftService | undefined;
  /** Label children by label values (see child()). */
  private readonly children = new Map<string, unknown>();

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry, this.serviceRegistry];
    const metrics = this;
    this.requests = new Counter({
      name: 'normserve_http_requests_total',
      help: 'HTTP requests by route pattern, method, status, model and version',
      labelNames: ['method', 'route', 'status', 'model', 'version'],
      registers,
      collect() {
        metrics.forgetRemovedVersions(this);
      },
    });
    this.requestDuration = new Histogram({
      name: 'normserve_http_request_duration_seconds',
      help: 'Whole-request latency (parsing, validation, inference, serialisation)',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.inferenceDuration = new Histogram({
      name: 'normserve_inference_duration_seconds',
      help: 'Model compute time per request (the forward pass and softmax only)',
      labelNames: ['model', 'version', 'fused'],
      collect() {
        metrics.forgetRemovedVersions(this);
      },
      // Up to 10 s, as the request histogram: a 4,096-row digits-cnn request computes for 0.5–0.8 s
      // on an idle 2-core machine, and a larger model's would all land in +Inf (review59).
      buckets: [
        0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
        0.25, 0.5, 1, 2.5, 5, 10,
      ],
      registers,
    });
    this.batchSize = new Histogram({
      name: 'normserve_batch_size',
      help: 'Rows per inference request',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.dynamicBatchRows = new Histogram({
      name: 'normserve_dynamic_batch_rows',
      help: 'Rows per engine call of the dynamic batcher (BATCH_MAX_DELAY_US > 0)',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.dynamicBatchRequests = new Histogram({
      name: 'normserve_dynamic_batch_requests',
      help: 'Requests merged into one engine call by the dynamic batcher',
      labelNames: ['model'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.batchQueueDelay = new Histogram({
      name: 'normserve_batch_queue_delay_seconds',
      help: 'Time a request waited in the dynamic batching queue',
      labelNames: ['model'],
      buckets: [
        0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 1,
      ],
      registers,
    });
    this.grpcRequests = new Counter({
      name: 'normserve_grpc_requests_total',
      help: 'gRPC calls by method, status code and model',
      labelNames: ['method', 'code', 'model'],
      registers,
    });
    this.grpcDuration = new Histogram({
      name: 'normserve_grpc_request_duration_seconds',
      help: 'gRPC call latency (decoding, validation, inference, encoding)',
      labelNames: ['method', 'code'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.loadFailures = new Counter({
      name: 'normserve_model_load_failures_total',
      help: 'Loads of a model version that failed (validation, corrupt files; a failed read again at each retry of the repository scans): one per server process that tried, summed over the workers',
      labelNames: ['model'],
      registers,
    });
    // Read from the registry at each scrape, so the series says what is served now: absent while
    // the model serves no version (normserve_model_ready 0 says so), gone with the model.
    this.activeVersion = new Gauge({
      name: 'normserve_model_active_version',
      help: 'The version each model serves by default; no series while it serves none (normserve_model_ready 0). Across workers: the highest while they differ, at most MODEL_POLL_INTERVAL_MS after a change',
      labelNames: ['model'],
      registers,
      aggregator: 'max',
      collect() {
        if (!metrics.models) return;
        this.reset();
        for (const m of metrics.models.list())
          if (m.active !== undefined) this.set({ model: m.name }, m.active);
      },
    });
    this.modelReady = new Gauge({
      name: 'normserve_model_ready',
      help: "1 while a model serves a version (its /v2/models/{name}/ready), else 0: a model of the server's start, or one that has served, makes /readyz 503 with STRICT_READINESS=on; one that appeared later and never loaded does not",
      labelNames: ['model'],
      registers,
      // Across workers: 0 while any of them serves no version of it.
      aggregator: 'min',
      collect() {
        if (!metrics.models) return;
        this.reset();
        for (const m of metrics.models.list())
          this.set({ model: m.name }, m.active !== undefined ? 1 : 0);
      },
    });
    this.recalibrations = new Counter({
      name: 'normserve_recalibrations_total',
      help: 'BatchNorm recalibrations by model, mode and outcome',
      labelNames: ['model', 'mode', 'outcome'],
      registers,
    });
    this.connectionsDropped = new Counter({
      name: 'normserve_connections_dropped_total',
      help: 'Connections closed on arrival because MAX_CONNECTIONS were open',
      registers,
    });
    this.overloaded = new Counter({
      name: 'normserve_overloaded_requests_total',
      help: 'Requests refused with OVERLOADED (503) because MAX_QUEUED_REQUESTS requests already waited for the engine, HTTP and gRPC',
      labelNames: ['model'],
      registers,
    });
    this.activeRecordInvalid = new Gauge({
      name: 'normserve_model_active_record_invalid',
      help: "1 while a model's active-version.json cannot be followed (unreadable, or naming a version that is not available); the version served before stays served (for a deleted version, the highest available one)",
      labelNames: ['model'],
      registers,
      // Across workers: 1 while any of them cannot follow the record.
      aggregator: 'max',
      collect() {
        if (!metrics.models) return;
        this.reset();
        for (const m of metrics.models.list()) this.set({ model: m.name }, m.activeProblem ? 1 : 0);
      },
    });
    // A process metric (each worker polls on its own): in `registry` only, so a server with
    // WORKERS > 1 shows it per worker.
    this.repositoryScans = new Counter({
      name: 'normserve_repository_scans_total',
      help: 'Scans of the model repository completed by this process (MODEL_POLL_INTERVAL_MS)',
      registers: [this.registry],
      collect() {
        if (!metrics.models) return;
        this.reset();
        this.inc(metrics.models.scans);
      },
    });
    // Live drift (docs/drift.md): with WORKERS > 1 every worker merges the others' shares
    // (cli/cluster-drift.ts), so each reports the drift of all the traffic, the freshest at most
    // a share interval ahead of the others: across workers every drift gauge is their largest.
    const driftReports = () => metrics.drift?.allReports() ?? [];
    this.driftScore = new Gauge({
      name: 'normserve_drift_score',
      help: "Live drift of a model version: its worst BatchNorm layer's score (mean |standardised shift| + |log std ratio| over channels)",
      labelNames: ['model', 'version'],
      registers,
      aggregator: 'max',
      collect() {
        this.reset();
        for (const r of driftReports())
          this.set({ model: r.model, version: String(r.report.version) }, r.report.score);
      },
    });
    this.driftLayerScore = new Gauge({
      name: 'normserve_drift_layer_score',
      help: 'Live drift of one BatchNorm layer (layer: its state-dict prefix)',
      labelNames: ['model', 'version', 'layer'],
      registers,
      aggregator: 'max',
      collect() {
        this.reset();
        for (const r of driftReports())
          for (const l of r.report.layers)
            this.set({ model: r.model, version: String(r.report.version), layer: l.path }, l.score);
      },
    });
    this.driftRows = new Gauge({
      name: 'normserve_drift_rows',
      help: 'Rows in the live drift statistics of a model version (the last DRIFT_WINDOWS × DRIFT_WINDOW_MS)',
      labelNames: ['model', 'version'],
      registers,
      aggregator: 'max',
      collect() {
        this.reset();
        for (const r of driftReports())
          this.set({ model: r.model, version: String(r.report.version) }, r.report.rows);
      },
    });
    this.driftRecommended = new Gauge({
      name: 'normserve_drift_recalibration_recommended',
      help: '1 while the drift score is above DRIFT_THRESHOLD with at least DRIFT_MIN_ROWS rows',
      labelNames: ['model', 'version'],
      registers,
      aggregator: 'max',
      collect() {
        this.reset();
        for (const r of driftReports())
          this.set(
            { model: r.model, version: String(r.report.version) },
            r.report.recommended ? 1 : 0,
          );
      },
    });
    this.autoRecalibrations = new Counter({
      name: 'normserve_auto_recalibration_actions_total',
      help: 'AUTO_RECALIBRATE actions (recommend, candidate, promote) by outcome (succeeded, failed, skipped)',
      labelNames: ['model', 'action', 'outcome'],
      registers,
    });
    this.autoOutlierRows = new Counter({
      name: 'normserve_auto_recalibration_outlier_rows_total',
      help: 'Rows of traffic samples left out of an automatic recalibration as outlying (more than OUTLIER_BOUND robust deviations from the sample median at a BatchNorm input)',
      labelNames: ['model'],
      registers,
    });
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'normserve_' });
  }

  /** A label child by a key of its label values, made once (no label object built per request). */
  private child<T>(key: string, make: () => T): T {
    let child = this.children.get(key) as T | undefined;
    if (child === undefined) {
      child = make();
      this.children.set(key, child);
    }
    return child;
  }

  /**
   * Counts one HTTP request and observes its latency: one look-up finds both bound cells
   * (metric-cells.ts) of the request's label values.
   */
  observeRequest(
    method: string,
    route: string,
    status: string,
    model: string,
    version: string,
    seconds: number,
  ): void {
    const cells = this.child(`request ${method} ${route} ${status} ${model} ${version}`, () => ({
      count: new BoundCounter(this.requests, { method, route, status, model, version }),
      duration: this.child(
        `duration ${method} ${route} ${status}`,
        () => new BoundHistogram(this.requestDuration, { method, route, status }),
      ),
    }));
    cells.count.inc();
    cells.duration.observe(seconds);
  }

  /**
   * A request Node's HTTP parser refused before any route saw it (malformed, headers too large):
   * counted under route `unmatched` with no method (none was read), and no duration.
   */
  countUnparsedRequest(status: number): void {
    this.requests.inc({
      method: '',
      route: 'unmatched',
      status: String(status),
      model: '',
      version: '',
    });
  }

  /**
   * Compute time and rows of one answered inference request, HTTP's or gRPC's (one look-up, as
   * observeRequest). `version` is its version's label, when the caller has made it already.
   */
  observeInference(
    inference: InferenceObservation,
    version: string = String(inference.version),
  ): void {
    const { model } = inference;
    const fused = inference.fused ? 'true' : 'false';
    const cells = this.child(`inference ${model} ${version} ${fused}`, () => ({
      compute: new BoundHistogram(this.inferenceDuration, { model, version, fused }),
      rows: this.child(`rows ${model}`, () => new BoundHistogram(this.batchSize, { model })),
    }));
    cells.compute.observe(inference.computeMs / 1000);
    cells.rows.observe(inference.rows);
  }

  /** One engine call of the dynamic batcher: one look-up finds the model's three bound cells. */
  observeBatch(report: BatchReport): void {
    const model = report.model;
    const cells = this.child(`batch ${model}`, () => ({
      rows: new BoundHistogram(this.dynamicBatchRows, { model }),
      requests: new BoundHistogram(this.dynamicBatchRequests, { model }),
      delay: new BoundHistogram(this.batchQueueDelay, { model }),
    }));
    cells.rows.observe(report.rows);
    cells.requests.observe(report.requests);
    for (const seconds of report.queueSeconds) cells.delay.observe(seconds);
  }

  /** One gRPC call: one look-up finds both bound cells, as observeRequest's. */
  observeGrpc(method: string, code: string, model: string, seconds: number): void {
    const cells = this.child(`grpc ${method} ${code} ${model}`, () => ({
      count: new BoundCounter(this.grpcRequests, { method, code, model }),
      duration: this.child(
        `grpc-duration ${method} ${code}`,
        () => new BoundHistogram(this.grpcDuration, { method, code }),
      ),
    }));
    cells.count.inc();
    cells.duration.observe(seconds);
  }

  /**
   * At each scrape, before `metric` is read: its series of a version the registry no longer holds
   * (deleted, or its model removed) are removed, with the cached cells of that version (`children`)
   * — as kube-state-metrics drops an object's series when the object goes, so the series of a
   * churn of versions do not pile up for the life of the process. A version that comes back starts
   * its series again from 0 (a counter reset, which rate() allows for). Series with no version
   * (`version=""`) stay. Without a registry (observeRegistry not called), nothing is removed.
   */
  private forgetRemovedVersions(metric: Counter<string> | Histogram<string>): void {
    const models = this.models?.list();
    if (models === undefined) return;
    const held = new Set<string>();
    for (const m of models) for (const v of m.versions.keys()) held.add(`${m.name}\0${v}`);
    const keep = (labels: Readonly<Record<string, string | undefined>>) =>
      labels.version === undefined ||
      labels.version === '' ||
      held.has(`${labels.model}\0${labels.version}`);
    removeSeries(metric, keep);
    for (const [key, entry] of this.children) {
      const cells =
        entry instanceof BoundCounter || entry instanceof BoundHistogram
          ? [entry]
          : Object.values(entry as object);
      if (
        cells.some(
          (c) => (c instanceof BoundCounter || c instanceof BoundHistogram) && !keep(c.labels),
        )
      )
        this.children.delete(key);
    }
  }

  /** Reads the registry at each scrape (for the series computed from it). */
  observeRegistry(registry: Pick<ModelRegistry, 'list' | 'scans'>): void {
    this.models = registry;
  }

  /** Reads the drift service at each scrape. */
  observeDrift(drift: DriftService): void {
    this.drift = drift;
  }

  /** This process's runtime metrics: `registry` without the service metrics. */
  async processMetricsJson(): Promise<Awaited<ReturnType<Registry['getMetricsAsJSON']>>> {
    const service = new Set(this.serviceRegistry.getMetricsAsArray().map((m) => m.name));
    return (await this.registry.getMetricsAsJSON()).filter((m) => !service.has(m.name));
  }
}
