import { type DriftRule, RecentRows, Reservoir } from '../drift/index.js';
import type { StatisticsProbe } from '../inference/index.js';
import { Rng } from '../nn/index.js';
import { AutoRecalibration, type AutoRecalibrationStatus } from './auto-recalibration.js';
import { DriftCluster } from './drift-cluster.js';
import type { DriftContext, DriftOptions, ModelTraffic } from './drift-context.js';
import type { DriftShare, TrafficSampleMessage } from './drift-share.js';
import { type Log, silentLog } from './logger.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';
import type { PeerSampleCollector } from './peer-samples.js';
import type { RecalibrationService } from './recalibration-service.js';
import { type LayerPictures, PICTURE_SAMPLE_ROWS, RecentPictures } from './recent-pictures.js';
import type { TrafficObserver } from './traffic-observer.js';
import { UsableRows } from './usable-rows.js';
import { VersionDrift, type VersionDriftReport } from './version-drift.js';

export type { AutoRecalibrationStatus } from './auto-recalibration.js';
export type {
  AutoAction,
  AutoActionRecord,
  AutoOutcome,
  DriftOptions,
} from './drift-context.js';
export { AUTO_RECALIBRATE_MODES, DEFAULT_DRIFT_THRESHOLD } from './drift-settings.js';
export {
  type LeftOut,
  type PeerSampleCollector,
  SAMPLE_KINDS,
  type SampleKind,
} from './peer-samples.js';
export {
  type LayerPictures,
  PEER_RECENT_REUSE_MS,
  PICTURE_SAMPLE_ROWS,
  recentRowsOf,
} from './recent-pictures.js';

/**
 * A look at the drift of a model (it folds the probe's sums into the windows, merges them and takes
 * a logarithm per channel: ≈ 5 µs for digits' 192 channels) comes after at least this many active
 * rows and this many engine calls: every 64 calls of 1-row requests, every 8 of 256-row ones,
 * which would otherwise pay one look each, 3 % of a 256-row call.
 */
const CHECK_EVERY_ROWS = 64;
const CHECK_EVERY_CALLS = 8;
/**
 * Rows an engine call offers the traffic sample at most, chosen uniformly: a call's rows come from
 * one client (or a dynamic batch of a few), and one large request must not fill the sample — a
 * reviewer's single predict of 600 blank rows made it, and a version recalibrated from it served
 * clean digits at 0.64 (docs/drift.md, "Outlying rows").
 */
export const SAMPLE_ROWS_PER_CALL = 8;

/**
 * WORKERS > 1: while a process's traffic sample fills, each time it grew by this many rows the
 * process shares at once (onSampleGrew) rather than at the next DRIFT_SHARE_INTERVAL_MS, so the
 * decider learns that the cluster's samples hold AUTO_RECALIBRATE_MIN_ROWS rows within this many
 * rows per process whatever the request rate (at 300 requests/s, a second is 300 rows).
 */
export const SAMPLE_GREW_ROWS = 64;

export interface DriftReport {
  model: string;
  active_version: number | null;
  threshold: number;
  min_rows: number;
  sample_fraction: number;
  window_ms: number;
  windows: number;
  /** The active version's drift (null while nothing was sampled or no version is served). */
  active: VersionDriftReport | null;
  /** Every loaded version with live statistics, highest first. */
  versions: VersionDriftReport[];
  auto_recalibration: AutoRecalibrationStatus;
}

/**
 * Drift seen in live traffic, per model and version, and what is done about it
 * (AUTO_RECALIBRATE): `recommend` logs and counts when a version's drift crosses the threshold;
 * `candidate` recalibrates (exact mode) from a bounded sample of the traffic and publishes the
 * result without serving it, then shadow-runs it on the traffic that follows; `promote` publishes
 * and serves it. Publishing goes through the RecalibrationService, the admin route's lock and
 * publishing code; each version is recalibrated automatically at most once (a rollback with
 * `:activate` sticks).
 *
 * The service is the facade of the drift parts, and keeps the per-request path (probe, observed,
 * refused) and the reports: the pictures of the recent traffic are `recent-pictures.ts`'s, the
 * automatic recalibration `auto-recalibration.ts`'s, the sharing between processes
 * (WORKERS > 1) `drift-cluster.ts`'s; what they share is a DriftContext (`drift-context.ts`).
 */
export class DriftService implements TrafficObserver {
  readonly options: DriftOptions;
  private readonly versions = new WeakMap<AvailableVersion, VersionDrift | null>();
  private readonly models = new Map<string, ModelTraffic>();
  private readonly rng: Rng;
  private readonly now: () => number;
  private readonly log: Log;
  private registry: ModelRegistry | undefined;
  private deciding: boolean;
  private collectPeers: PeerSampleCollector | undefined;
  private sampleGrew: (() => void) | undefined;
  /** The pictures of the recent traffic (GET …/drift/layers). */
  private readonly recentPictures: RecentPictures;
  /** What AUTO_RECALIBRATE does about the drift. */
  private readonly auto: AutoRecalibration;
  /** WORKERS > 1: what this process shares with the others. */
  private readonly cluster: DriftCluster;

  constructor(options: DriftOptions) {
    this.options = options;
    this.deciding = options.decides ?? true;
    this.rng = new Rng(options.seed ?? 0x5eed);
    this.now = options.now ?? Date.now;
    this.log = options.log ?? silentLog;
    const context: DriftContext = {
      options,
      rng: this.rng,
      now: this.now,
      log: this.log,
      versions: this.versions,
      models: this.models,
      remoteAuto: new Map(),
      peerSizes: new Map(),
      usable: new UsableRows(),
      registry: () => this.registry,
      requireRegistry: () => this.requireRegistry(),
      collectPeers: () => this.collectPeers,
      deciding: () => this.deciding,
      rule: () => this.rule,
      probe: (served, rows) => this.probe(served, rows),
      versionDrift: (served) => this.versionDrift(served),
    };
    this.recentPictures = new RecentPictures(context);
    this.auto = new AutoRecalibration(context);
    this.cluster = new DriftCluster(context, this.auto);
  }

  /** The registry whose models are watched (for the active version, candidates and reports). */
  useRegistry(registry: ModelRegistry): void {
    this.registry = registry;
  }

  /** The recalibration use case automatic actions publish through (the admin routes' too). */
  useRecalibration(service: RecalibrationService): void {
    this.auto.useRecalibration(service);
  }

  /**
   * WORKERS > 1: how the deciding process gathers the other processes' traffic samples before it
   * recalibrates from traffic (without it, from its own sample alone: one process).
   */
  usePeerSamples(collect: PeerSampleCollector): void {
    this.collectPeers = collect;
  }

  /**
   * WORKERS > 1: called when a traffic sample that is still filling grew by SAMPLE_GREW_ROWS rows
   * (the worker then shares at once: cli/cluster-drift.ts).
   */
  onSampleGrew(grew: () => void): void {
    this.sampleGrew = grew;
  }

  /** Whether this process acts on drift (AUTO_RECALIBRATE). */
  get decides(): boolean {
    return this.deciding;
  }

  /**
   * Makes this process the one that acts on drift, or not (WORKERS > 1: the cluster primary
   * names one). A process that takes over knows which versions the previous one recalibrated.
   */
  setDecides(decides: boolean): void {
    if (decides === this.deciding) return;
    this.deciding = decides;
    this.cluster.decidesNow(decides);
  }

  /**
   * What this process saw since its last share (its own traffic's moments per version and
   * window) and, when it decides, its automatic recalibration state; undefined when there is
   * nothing new to tell.
   */
  takeShare(): DriftShare | undefined {
    return this.cluster.takeShare();
  }

  /**
   * This process's traffic sample of a model (asked for by the deciding process): the rows the
   * active version served since it became active, as a uniform sample, with the count they
   * stand for.
   */
  trafficSample(model: string): TrafficSampleMessage {
    return this.cluster.trafficSample(model);
  }

  /**
   * Merges what another process shared (its traffic's moments and sample sizes; the decider's
   * auto state). `from` names the sender (its cluster worker id).
   */
  mergeShare(share: DriftShare, from = 0): void {
    this.cluster.mergeShare(share, from);
  }

  get rule(): DriftRule {
    return { threshold: this.options.threshold, minRows: this.options.minRows };
  }

  /** The live statistics of a version (made on first use; null: nothing observable). */
  versionDrift(served: AvailableVersion): VersionDrift | null {
    let drift = this.versions.get(served);
    if (drift === undefined) {
      try {
        drift = new VersionDrift(served, {
          windowMs: this.options.windowMs,
          windows: this.options.windows,
          share: this.options.share ?? false,
        });
        if (drift.inputs.length === 0) drift = null;
      } catch (e) {
        this.log.warn(
          { model: served.name, version: served.version, err: e },
          'live drift statistics unavailable for this version',
        );
        drift = null;
      }
      this.versions.set(served, drift);
    }
    return drift;
  }

  probe(served: AvailableVersion, _rows: number): StatisticsProbe | undefined {
    const f = this.options.sampleFraction;
    if (f <= 0 || (f < 1 && this.rng.next() >= f)) return undefined;
    return this.versionDrift(served)?.probe;
  }

  refused(served: AvailableVersion, probe: StatisticsProbe): void {
    const drift = this.versions.get(served);
    if (drift?.probe === probe) drift.refused(this.now());
  }

  observed(
    served: AvailableVersion,
    input: Float32Array,
    rows: number,
    _outputs: Float32Array,
    probabilities: Float32Array | undefined,
    probe: StatisticsProbe | undefined,
  ): void {
    const now = this.now();
    if (probe) this.versions.get(served)?.gathered(rows, now);
    const registry = this.registry;
    if (!registry?.has(served.name) || registry.get(served.name).active !== served.version) return;
    const state = this.stateOf(served);
    if (state.activeVersion !== served.version) {
      // A new active version (promoted, rolled back): the sample describes the old one's traffic.
      state.activeVersion = served.version;
      state.reservoir?.reset();
      state.sampleWantedRows = 0;
      state.recent.reset();
      state.recommended = false;
    }
    state.recent.push(input, rows);
    // Every process samples the traffic it serves; the decider draws from all the samples.
    const reservoir = state.reservoir;
    if (reservoir) {
      const before = reservoir.size;
      reservoir.offerAtMost(input, rows, SAMPLE_ROWS_PER_CALL);
      if (
        this.sampleGrew &&
        before < reservoir.capacity &&
        Math.floor(reservoir.size / SAMPLE_GREW_ROWS) > Math.floor(before / SAMPLE_GREW_ROWS)
      )
        this.sampleGrew();
    }
    if (!this.deciding) return;
    if (state.candidate && probabilities)
      this.auto.shadow(served, state, input, rows, probabilities);
    state.rowsSinceCheck += rows;
    state.callsSinceCheck++;
    if (
      probe &&
      state.rowsSinceCheck >= CHECK_EVERY_ROWS &&
      state.callsSinceCheck >= CHECK_EVERY_CALLS
    ) {
      state.rowsSinceCheck = 0;
      state.callsSinceCheck = 0;
      this.auto.check(served, state, now);
    }
  }

  /** The drift report of a model (GET /v1/models/{name}/drift). */
  report(name: string): DriftReport {
    const registry = this.requireRegistry();
    const model = registry.get(name);
    const now = this.now();
    const versions: VersionDriftReport[] = [];
    let active: VersionDriftReport | null = null;
    for (const v of [...model.versions.values()].sort((a, b) => b.version - a.version)) {
      if (v.state !== 'AVAILABLE') continue;
      const drift = this.versions.get(v);
      if (!drift) continue;
      const r = drift.report(now, this.rule);
      versions.push(r);
      if (v.version === model.active) active = r;
    }
    return {
      model: name,
      active_version: model.active ?? null,
      threshold: this.options.threshold,
      min_rows: this.options.minRows,
      sample_fraction: this.options.sampleFraction,
      window_ms: this.options.windowMs,
      windows: this.options.windows,
      active,
      versions,
      auto_recalibration: this.auto.autoStatus(name, versions),
    };
  }

  /**
   * The seed's picture per BatchNorm of the active version, on the last rows it served
   * (RecentPictures.pictures).
   */
  pictures(name: string): Promise<LayerPictures> {
    return this.recentPictures.pictures(name);
  }

  /** This process's recent rows of a model's active version (for the pictures), as a sample. */
  recentSample(model: string): TrafficSampleMessage {
    return this.recentPictures.recentSample(model);
  }

  /** The automatic recalibration state of a model (also in its status). */
  autoStatus(name: string, reports?: readonly VersionDriftReport[]): AutoRecalibrationStatus {
    return this.auto.autoStatus(name, reports);
  }

  /** Every version's report, for the metrics (model, version, report). */
  allReports(): { model: string; active: boolean; report: VersionDriftReport }[] {
    const out: { model: string; active: boolean; report: VersionDriftReport }[] = [];
    const now = this.now();
    for (const model of this.registry?.list() ?? []) {
      for (const v of model.versions.values()) {
        if (v.state !== 'AVAILABLE') continue;
        const drift = this.versions.get(v);
        if (drift)
          out.push({
            model: model.name,
            active: model.active === v.version,
            report: drift.report(now, this.rule),
          });
      }
    }
    return out;
  }

  /** Resolves when automatic recalibrations and shadow runs in progress are done (shutdown, tests). */
  drain(): Promise<void> {
    return this.auto.drain();
  }

  private requireRegistry(): ModelRegistry {
    if (!this.registry) throw new Error('DriftService: no registry (useRegistry)');
    return this.registry;
  }

  private stateOf(served: AvailableVersion): ModelTraffic {
    let state = this.models.get(served.name);
    if (!state) {
      const o = this.options;
      const width = served.compiled.inputWidth;
      const capacity = Math.min(o.sampleRows, Math.floor(o.sampleBytes / (4 * width)));
      const acts = o.autoRecalibrate === 'candidate' || o.autoRecalibrate === 'promote';
      // The rows bound is checked against the minimum at start (server-config.ts); the bytes
      // bound depends on the model's width, known only now. Said once, or nothing would ever say
      // why a model's drift is recommended and never acted on (ops review of 2026-12-04, finding 4).
      if (acts && capacity < o.autoMinRows)
        this.log.warn(
          {
            model: served.name,
            sampleCapacity: capacity,
            minRows: o.autoMinRows,
            rowBytes: 4 * width,
            neededSampleBytes: 4 * width * o.autoMinRows,
          },
          "drift: this model's traffic sample can never hold AUTO_RECALIBRATE_MIN_ROWS rows (TRAFFIC_SAMPLE_BYTES / its row size): it will not be recalibrated from traffic; raise TRAFFIC_SAMPLE_BYTES to neededSampleBytes or lower AUTO_RECALIBRATE_MIN_ROWS",
        );
      state = {
        reservoir: acts ? new Reservoir(width, Math.max(1, capacity), this.rng) : undefined,
        recent: new RecentRows(width, PICTURE_SAMPLE_ROWS),
        activeVersion: served.version,
        recommended: false,
        sampleWantedRows: 0,
        rowsSinceCheck: 0,
        callsSinceCheck: 0,
        inFlight: false,
        autoParents: this.cluster.inheritedParents.get(served.name) ?? new Set(),
        notAgainLogged: new Set(),
        lastAutoPublishedAt: undefined,
        tooSoonLoggedUntil: undefined,
        candidate: undefined,
        shadowPendingRows: 0,
        last: undefined,
      };
      this.models.set(served.name, state);
    }
    return state;
  }
}
