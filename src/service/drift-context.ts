import type { DriftRule, RecentRows, Reservoir, ShadowComparison } from '../drift/index.js';
import type { StatisticsProbe } from '../inference/index.js';
import type { Rng } from '../nn/index.js';
import type { AutoAction, AutoActionRecord, AutoOutcome } from './auto-status-schema.js';
import type { AutoRecalibrate } from './drift-settings.js';
import type { SampleSize, SharedAutoStatus } from './drift-share.js';

export type { AutoAction, AutoActionRecord, AutoOutcome };

import type { Log } from './logger.js';
import type { AvailableVersion, ModelRegistry } from './model-registry.js';
import type { PeerSampleCollector } from './peer-samples.js';
import type { UsableRows } from './usable-rows.js';
import type { VersionDrift } from './version-drift.js';

export interface DriftOptions extends DriftRule {
  /** Share of engine calls whose BatchNorm inputs are gathered (DRIFT_SAMPLE_FRACTION; 0 = off). */
  sampleFraction: number;
  windowMs: number;
  windows: number;
  autoRecalibrate: AutoRecalibrate;
  /** Rows the traffic sample must hold before an automatic recalibration. */
  autoMinRows: number;
  /**
   * The least time, by the wall clock, between two automatic recalibrations of one model
   * (AUTO_RECALIBRATE_INTERVAL_MS; 0 or absent: no bound).
   */
  autoIntervalMs?: number;
  /**
   * Robust standard deviations from the traffic sample's median beyond which a row is left out
   * of an automatic recalibration (default OUTLIER_BOUND; docs/drift.md, Outlying rows).
   */
  outlierBound?: number;
  /** Bounds of the per-model traffic sample (rows and bytes; the smaller wins). */
  sampleRows: number;
  sampleBytes: number;
  /**
   * WORKERS > 1: this process is one of several serving the same versions; it keeps its own
   * statistics apart for takeShare and merges the others' (mergeShare).
   */
  share?: boolean;
  /**
   * Whether this process acts on drift (AUTO_RECALIBRATE's log lines, counts, traffic sample and
   * recalibrations): one process of a cluster does (setDecides); true by default.
   */
  decides?: boolean;
  /** Seed of the sampling decisions and the reservoir (reproducible tests). */
  seed?: number;
  /** The clock (ms since the epoch); tests move it by hand. */
  now?: () => number;
  log?: Log;
  /** Every automatic action and its outcome (metrics). */
  onAction?: (model: string, action: AutoAction, outcome: AutoOutcome) => void;
  /** Rows the screening of a traffic sample left out as outlying (metrics). */
  onOutlierRows?: (model: string, rows: number) => void;
}

export interface Candidate {
  version: number;
  parent: number;
  shadow: ShadowComparison;
  publishedAt: string;
}

/** What the service tracks per model. */
export interface ModelTraffic {
  reservoir: Reservoir | undefined;
  /** The last rows the active version served (the pictures' sample). */
  recent: RecentRows;
  /** The active version the reservoir's rows were served by. */
  activeVersion: number | undefined;
  recommended: boolean;
  /**
   * Rows the traffic sample must hold before the next recalibration from it is tried: above
   * AUTO_RECALIBRATE_MIN_ROWS after a sample short of usable rows, which keeps growing.
   */
  sampleWantedRows: number;
  rowsSinceCheck: number;
  callsSinceCheck: number;
  inFlight: boolean;
  /** Parent versions an automatic recalibration was published from (never twice from one). */
  autoParents: Set<number>;
  /** The versions of autoParents whose 'not again' line this process has logged (once each). */
  notAgainLogged: Set<number>;
  /** When (wall clock, ms) this process last published a version recalibrated from traffic. */
  lastAutoPublishedAt: number | undefined;
  /** The end of the interval whose 'too soon' line this process has logged (once per interval). */
  tooSoonLoggedUntil: number | undefined;
  candidate: Candidate | undefined;
  shadowPendingRows: number;
  last: AutoActionRecord | undefined;
}

/**
 * What the parts of a DriftService (the pictures, the automatic recalibration, the cluster
 * sharing) share with it and with each other: the service owns every piece and hands each part
 * the same instances, so that its per-request path reads its own fields as before.
 */
export interface DriftContext {
  readonly options: DriftOptions;
  /** The service's random stream (the sampling decisions, the reservoirs, the sample unions). */
  readonly rng: Rng;
  readonly now: () => number;
  readonly log: Log;
  /** The live statistics of each version (DriftService.versionDrift makes them). */
  readonly versions: WeakMap<AvailableVersion, VersionDrift | null>;
  readonly models: Map<string, ModelTraffic>;
  /** The deciding process's automatic recalibration state per model (when this one does not). */
  readonly remoteAuto: Map<string, SharedAutoStatus>;
  /** The other processes' traffic sample sizes per model, by worker (from their shares). */
  readonly peerSizes: Map<string, Map<number, SampleSize>>;
  /** The rows of a version whose BatchNorm inputs are finite (the pictures, a recalibration). */
  readonly usable: UsableRows;
  /** The registry given to useRegistry (undefined before). */
  registry(): ModelRegistry | undefined;
  /** The registry, or an error when none was given. */
  requireRegistry(): ModelRegistry;
  /** The collector given to usePeerSamples (undefined: one process). */
  collectPeers(): PeerSampleCollector | undefined;
  /** Whether this process acts on drift (DriftService.decides). */
  deciding(): boolean;
  rule(): DriftRule;
  /** DriftService.probe: a statistics probe for a call of `rows` rows, when this one is sampled. */
  probe(served: AvailableVersion, rows: number): StatisticsProbe | undefined;
  /** DriftService.versionDrift: the live statistics of a version, made on first use. */
  versionDrift(served: AvailableVersion): VersionDrift | null;
}
