import type { z } from 'zod';
import {
  distinctRows,
  entropyChange,
  OUTLIER_BOUND,
  promotionRefusal,
  recalibrationRecommended,
  ShadowComparison,
  type UniformSample,
  uniformUnion,
} from '../drift/index.js';
import { isNormserveError } from '../errors/index.js';
import type { autoCandidateSchema, autoStatusSchema } from './auto-status-schema.js';
import type { AutoActionRecord, DriftContext, ModelTraffic } from './drift-context.js';
import { decodeSampleRows, type SampleSize } from './drift-share.js';
import type { AvailableVersion } from './model-registry.js';
import { type LeftOut, sampleMismatch } from './peer-samples.js';
import type { RecalibrationOutcome } from './recalibration-outcome.js';
import type { RecalibrationService } from './recalibration-service.js';
import { activationCall } from './recalibration-session.js';
import { lastTrafficRecalibration, trafficChildOf } from './traffic-lineage.js';
import { samplePredictions, screenTrafficSample } from './traffic-screen.js';
import type { VersionDriftReport } from './version-drift.js';

/** Rows waiting for a shadow run at most; more are not shadowed (the candidate falls behind). */
const MAX_SHADOW_PENDING_ROWS = 4096;

/** The sample a recalibration from traffic draws from, and (WORKERS > 1) whose it is. */
type ClusterSample = UniformSample & {
  workers?: { workers: number; leftOut: LeftOut[]; deciderTrafficRows: number };
};

/** A model's automatic recalibration state (auto-status-schema.ts), the candidate's drift with it. */
export type AutoRecalibrationStatus = Omit<z.output<typeof autoStatusSchema>, 'candidate'> & {
  candidate: (z.output<typeof autoCandidateSchema> & { drift: VersionDriftReport | null }) | null;
};

/**
 * Distinct rows a traffic sample needs, as a share of AUTO_RECALIBRATE_MIN_ROWS, before it is
 * recalibrated from: the bundled tests' traffic (1,000 draws from 360 rows) holds about 270
 * distinct rows in 512; a stuck sensor's, one.
 */
export const MIN_DISTINCT_SHARE = 0.25;

/**
 * What AUTO_RECALIBRATE does about a model's drift (DriftService delegates): the look at the active
 * version's drift, the recalibration from the (cluster's) traffic sample, the candidate's shadow
 * runs, and the automatic state reported.
 */
export class AutoRecalibration {
  private recalibration: RecalibrationService | undefined;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly context: DriftContext) {}

  /** The recalibration use case automatic actions publish through (the admin routes' too). */
  useRecalibration(service: RecalibrationService): void {
    this.recalibration = service;
  }

  /** The automatic recalibration state of a model (also in its status). */
  autoStatus(name: string, reports?: readonly VersionDriftReport[]): AutoRecalibrationStatus {
    const remote = this.context.deciding() ? undefined : this.context.remoteAuto.get(name);
    if (remote) {
      const { model: _model, auto_parents: _parents, candidate, ...status } = remote;
      return {
        mode: this.context.options.autoRecalibrate,
        ...status,
        candidate: candidate && {
          ...candidate,
          drift: this.candidateDrift(name, candidate.version, reports),
        },
      };
    }
    const state = this.context.models.get(name);
    const candidate = state?.candidate;
    const candidateDrift = candidate ? this.candidateDrift(name, candidate.version, reports) : null;
    return {
      mode: this.context.options.autoRecalibrate,
      sample_rows: state ? this.clusterSampleRows(name, state) : 0,
      sample_capacity: state?.reservoir?.capacity ?? 0,
      in_progress: state?.inFlight ?? false,
      last_action: state?.last ?? null,
      candidate: candidate
        ? {
            version: candidate.version,
            parent_version: candidate.parent,
            published_at: candidate.publishedAt,
            shadow: candidate.shadow.summary(),
            drift: candidateDrift,
          }
        : null,
    };
  }

  /**
   * Rows a recalibration from traffic would draw now: this process's sample and, WORKERS > 1,
   * those the other processes last said they hold for the same active version, at most the
   * sample's capacity (one process: its reservoir's size).
   */
  private clusterSampleRows(name: string, state: ModelTraffic): number {
    const reservoir = state.reservoir;
    if (!reservoir) return 0;
    let held = reservoir.size;
    for (const peer of this.context.peerSizes.get(name)?.values() ?? [])
      if (peer.version === state.activeVersion) held += peer.size;
    return Math.min(held, reservoir.capacity);
  }

  /** A candidate's drift: from the reports at hand, else its own. */
  private candidateDrift(
    name: string,
    version: number,
    reports?: readonly VersionDriftReport[],
  ): VersionDriftReport | null {
    if (reports) return reports.find((r) => r.version === version) ?? null;
    const served = this.context.registry()?.get(name).versions.get(version);
    const drift = served?.state === 'AVAILABLE' ? this.context.versions.get(served) : undefined;
    return drift ? drift.report(this.context.now(), this.context.rule()) : null;
  }

  /** Resolves when automatic recalibrations and shadow runs in progress are done (shutdown, tests). */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private track(work: Promise<unknown>): void {
    this.pending.add(work);
    const forget = () => this.pending.delete(work);
    work.then(forget, forget);
  }

  private record(name: string, state: ModelTraffic, last: AutoActionRecord): void {
    state.last = last;
    this.context.options.onAction?.(name, last.action, last.outcome);
  }

  /** Looks at the active version's drift; acts on it as AUTO_RECALIBRATE says. */
  check(served: AvailableVersion, state: ModelTraffic, now: number): void {
    const drift = this.context.versions.get(served);
    if (!drift) return;
    const { score, rows } = drift.score(now);
    const report = {
      score,
      rows,
      recommended: recalibrationRecommended(this.context.rule(), score, rows),
    };
    if (report.recommended !== state.recommended) {
      state.recommended = report.recommended;
      const context = {
        model: served.name,
        version: served.version,
        score: report.score,
        rows: report.rows,
        threshold: this.context.options.threshold,
      };
      if (report.recommended) {
        this.context.log.warn(context, 'drift: recalibration recommended');
        if (this.context.options.autoRecalibrate !== 'off')
          this.record(served.name, state, {
            action: 'recommend',
            outcome: 'succeeded',
            version: served.version,
            at: new Date(now).toISOString(),
            detail: `drift score ${report.score.toFixed(3)} over ${report.rows} rows`,
          });
      } else this.context.log.info(context, 'drift: back under the threshold');
    }
    const mode = this.context.options.autoRecalibrate;
    if (
      report.recommended &&
      (mode === 'candidate' || mode === 'promote') &&
      !state.inFlight &&
      state.reservoir &&
      this.clusterSampleRows(served.name, state) >=
        Math.max(this.context.options.autoMinRows, state.sampleWantedRows) &&
      this.recalibration &&
      !this.recalibratedAlready(served, state) &&
      !this.tooSoon(served, state)
    ) {
      this.track(this.recalibrate(served, state, mode, report, this.recalibration));
    }
  }

  /**
   * Whether `served` was recalibrated from its traffic already: by this process (autoParents), or,
   * as the repository says (as this process last read it), by another replica or before a
   * restart. Then it is not recalibrated automatically again (a rollback to it sticks), and that
   * is logged once, when it would otherwise have been (the drift is recommended, the sample full).
   */
  private recalibratedAlready(served: AvailableVersion, state: ModelTraffic): boolean {
    const registry = this.context.registry();
    const child = registry?.has(served.name)
      ? trafficChildOf(registry.get(served.name), served.version)
      : undefined;
    if (!state.autoParents.has(served.version)) {
      if (child === undefined) return false;
      state.autoParents.add(served.version);
    }
    if (!state.notAgainLogged.has(served.version)) {
      state.notAgainLogged.add(served.version);
      this.context.log.info(
        {
          model: served.name,
          version: served.version,
          ...(child !== undefined ? { recalibratedAs: child } : {}),
        },
        'drift: this version was already recalibrated from its traffic; not again (a rollback to it sticks)',
      );
    }
    return true;
  }

  /**
   * Whether the model's last automatic recalibration — published by this process, or, as the
   * repository says (its provenance's `created_at`), by another process or replica or before a
   * restart — was less than AUTO_RECALIBRATE_INTERVAL_MS ago by the wall clock. Then none starts,
   * and that is logged once per interval, when one would otherwise have started.
   */
  private tooSoon(served: AvailableVersion, state: ModelTraffic): boolean {
    const intervalMs = this.context.options.autoIntervalMs ?? 0;
    if (intervalMs === 0) return false;
    const registry = this.context.registry();
    const recorded = registry?.has(served.name)
      ? lastTrafficRecalibration(registry.get(served.name))
      : undefined;
    const lastMs = Math.max(
      recorded?.createdAtMs ?? -Infinity,
      state.lastAutoPublishedAt ?? -Infinity,
    );
    const nextMs = lastMs + intervalMs;
    if (!(Date.now() < nextMs)) return false;
    if (state.tooSoonLoggedUntil !== nextMs) {
      state.tooSoonLoggedUntil = nextMs;
      this.context.log.info(
        {
          model: served.name,
          version: served.version,
          last: new Date(lastMs).toISOString(),
          next: new Date(nextMs).toISOString(),
          intervalMs,
        },
        'drift: the last recalibration from traffic is more recent than AUTO_RECALIBRATE_INTERVAL_MS; the next waits',
      );
    }
    return true;
  }

  private async recalibrate(
    served: AvailableVersion,
    state: ModelTraffic,
    mode: 'candidate' | 'promote',
    report: { score: number; rows: number },
    service: RecalibrationService,
  ): Promise<void> {
    state.inFlight = true;
    /** Whether the sample taken is kept growing (too few usable rows) rather than started again. */
    let keepSample = false;
    let taken = false;
    let sampleStarted = false;
    const startSampleAgain = () => {
      state.reservoir?.reset();
      state.sampleWantedRows = 0;
      sampleStarted = true;
    };
    let context: Record<string, unknown> = { model: served.name, parent: served.version, mode };
    /** Records a skipped action with its reason and logs it (fields: the log line's extras). */
    const skip = (detail: string, message: string, fields: Record<string, unknown> = {}) => {
      this.record(served.name, state, {
        action: mode,
        outcome: 'skipped',
        at: new Date(this.context.now()).toISOString(),
        detail,
      });
      this.context.log.warn({ ...context, reason: detail, ...fields }, message);
    };
    try {
      const sample = await this.clusterSample(served, state);
      if (sample === undefined) return;
      taken = true;
      const { seen: trafficRows, workers } = sample;
      const usable = this.context.usable.usableRows(served, sample.rows, sample.size);
      // Rows the active version served since it became active (the sample is uniform over them).
      context = { ...context, rows: usable.count, trafficRows, ...workers };
      if (usable.count < sample.size) context.overflowingRows = sample.size - usable.count;
      // The windowed drift score sums every row on the request path, so a handful of absurd rows
      // can carry it over the threshold alone (3 rows of 1e4 among 1,100: 0.1 → 7.9). What is
      // acted on is the sample's own drift once its outlying rows are left out (bounded
      // influence: traffic-screen.ts, docs/drift.md "Outlying rows"), and it recalibrates from the
      // rows kept.
      // A sample of a handful of inputs repeated (a stuck sensor's blank frame, one client
      // resending a request) is not a distribution to take BatchNorm statistics from, and its
      // median would make the genuine rows look outlying: it needs MIN_DISTINCT_SHARE of
      // AUTO_RECALIBRATE_MIN_ROWS distinct rows. (Traffic repeats inputs too, so copies are not
      // dropped: the statistics keep their weights.)
      const distinct = distinctRows(usable.rows, usable.count, served.compiled.inputWidth).count;
      context.distinctRows = distinct;
      const minDistinct = Math.ceil(MIN_DISTINCT_SHARE * this.context.options.autoMinRows);
      if (distinct < minDistinct) {
        skip(
          `the traffic sample holds ${distinct} distinct rows of ${usable.count}, fewer than ${minDistinct} (a quarter of AUTO_RECALIBRATE_MIN_ROWS): a few inputs repeated`,
          'drift: recalibration skipped',
        );
        return;
      }
      const bound = this.context.options.outlierBound ?? OUTLIER_BOUND;
      const screened = await screenTrafficSample(served, usable.rows, usable.count, bound);
      if (state.activeVersion !== served.version) {
        // Promoted or rolled back while the sample was screened: it described the old version's
        // traffic, and the sample starts again for the new one.
        skip(
          `version ${served.version} stopped being the active version while its traffic sample was screened`,
          'drift: recalibration skipped',
        );
        return;
      }
      const held = screened.count;
      context.screenedScore = screened.score;
      if (screened.outliers > 0) {
        context.outlierRows = screened.outliers;
        this.context.options.onOutlierRows?.(served.name, screened.outliers);
      }
      if (!(screened.score > this.context.options.threshold)) {
        skip(
          `the traffic sample's drift score without its ${screened.outliers} outlying rows is ${screened.score.toFixed(3)}, not above the threshold ${this.context.options.threshold} (windowed score ${report.score.toFixed(3)})`,
          'drift: the traffic sample does not drift without its outlying rows; recalibration skipped',
          { score: report.score, threshold: this.context.options.threshold },
        );
        return;
      }
      // The sample held AUTO_RECALIBRATE_MIN_ROWS rows; the usable ones must too, or a client
      // sending such rows could have a version recalibrated from a handful of rows. The sample is
      // kept and grows (up to its capacity) until the rows missing could have come: started
      // again, 1 % of outlying rows would have it fall short every time.
      const minRows = this.context.options.autoMinRows;
      if (held < minRows) {
        const wanted = sample.size + (minRows - held);
        keepSample = wanted <= state.reservoir!.capacity;
        state.sampleWantedRows = keepSample ? wanted : 0;
        this.context.log.info(
          {
            ...context,
            minRows,
            ...(keepSample ? { nextTryAtRows: wanted } : { sampleStartsAgain: true }),
          },
          'drift: too few usable rows in the traffic sample (AUTO_RECALIBRATE_MIN_ROWS); recalibration postponed',
        );
        return;
      }
      this.context.log.info(
        { ...context, score: report.score },
        'drift: recalibrating from traffic',
      );
      const screening =
        screened.outliers > 0
          ? `, ${screened.outliers} outlying rows left out (beyond ${bound} robust standard deviations of the sample at a BatchNorm input)`
          : '';
      // Published without serving it even with `promote`: it is served only once its answers on
      // the sample are not degenerate (promotionRefusal).
      const note = `recalibrated from traffic: drift score ${report.score.toFixed(3)} over ${report.rows} rows (${screened.score.toFixed(3)} in the screened sample), ${held} sampled rows${screening} (AUTO_RECALIBRATE=${mode})`;
      // The sample is used: the next one starts now, not once the recalibration is over, so that
      // the rows served by this version while it runs are kept for the next try (a run that
      // fails, finds the model busy or publishes without activating leaves this version served).
      startSampleAgain();
      const outcome: RecalibrationOutcome = await service.recalibrateRows(
        {
          model: served.name,
          mode: 'exact',
          activate: false,
          source: 'traffic',
          trafficOf: served.version,
          note,
        },
        screened.rows,
      );
      state.autoParents.add(served.version);
      state.lastAutoPublishedAt = Date.now();
      const at = () => new Date(this.context.now()).toISOString();
      /** Records the action's result and logs it (a version not served is a warning). */
      const settle = (result: 'succeeded' | 'skipped', message: string, detail?: string) => {
        this.record(served.name, state, {
          action: mode,
          outcome: result,
          version: outcome.version,
          at: at(),
          ...(detail !== undefined ? { detail } : {}),
        });
        const fields = { ...context, version: outcome.version };
        if (result === 'skipped') this.context.log.warn({ ...fields, reason: detail }, message);
        else this.context.log.info({ ...fields, activated: mode === 'promote' }, message);
      };
      if (mode === 'candidate') {
        state.candidate = {
          version: outcome.version,
          parent: served.version,
          shadow: new ShadowComparison(),
          publishedAt: at(),
        };
        settle('succeeded', 'drift: recalibrated from traffic; candidate published');
        return;
      }
      const registry = this.context.requireRegistry();
      const candidate = registry.resolve(served.name, outcome.version);
      const before = await samplePredictions(served, screened.rows, held);
      const after = await samplePredictions(candidate, screened.rows, held);
      const refusal = promotionRefusal(before, after);
      if (refusal !== undefined) {
        const detail = `version ${outcome.version} published, not served: ${refusal}`;
        settle('skipped', 'drift: recalibrated from traffic; not promoted', detail);
        return;
      }
      // Served only if its parent is still the active version when it is activated: an
      // operator's activation while it was recalibrated (in any process) stands.
      let activation: Awaited<ReturnType<typeof registry.activateIf>>;
      try {
        activation = await registry.activateIf(served.name, outcome.version, served.version, note);
      } catch (e) {
        if (!isNormserveError(e) || e.code !== 'ACTIVE_RECORD_BUSY') throw e;
        // The version is published (on disk, listed): not promoted, as when the active version
        // changed, rather than a failure that would leave it unmentioned.
        const detail = `version ${outcome.version} published, not served: ${e.message}; activate it by hand (${activationCall(served.name, outcome.version)})`;
        settle('skipped', 'drift: recalibrated from traffic; not promoted', detail);
        return;
      }
      if (!activation.activated) {
        const detail = `version ${outcome.version} published, not served: the active version changed meanwhile (version ${activation.found ?? 'none'} is active); an activation made while a recalibration runs is never undone`;
        settle('skipped', 'drift: recalibrated from traffic; not promoted', detail);
        return;
      }
      // What the guard cannot judge, told to whoever reads the outcome: a version that fits
      // shifted inputs is usually more confident on them; one recalibrated on a change of the
      // class mix is less (docs/drift.md, "The promotion guard").
      settle(
        'succeeded',
        'drift: recalibrated from traffic and promoted',
        entropyChange(before, after),
      );
    } catch (e) {
      // Not a fault: the model is being recalibrated, or the server is shutting down (the run was
      // refused from the signal on, or cut by the drain's budget, which logs the job itself).
      const busy =
        isNormserveError(e) &&
        (e.code === 'RECALIBRATION_IN_PROGRESS' ||
          e.code === 'PARENT_CHANGED' ||
          e.code === 'SHUTTING_DOWN' ||
          e.code === 'JOB_INTERRUPTED');
      // Another process recalibrated this version from its traffic first: not again.
      if (isNormserveError(e) && e.code === 'PARENT_CHANGED') {
        const registry = this.context.registry();
        if (
          registry?.has(served.name) &&
          trafficChildOf(registry.get(served.name), served.version) !== undefined
        )
          state.autoParents.add(served.version);
      }
      this.record(served.name, state, {
        action: mode,
        outcome: busy ? 'skipped' : 'failed',
        at: new Date(this.context.now()).toISOString(),
        detail: e instanceof Error ? e.message : String(e),
      });
      if (busy)
        this.context.log.info({ ...context, reason: String(e) }, 'drift: recalibration skipped');
      else
        this.context.log.error({ ...context, err: e }, 'drift: recalibration from traffic failed');
    } finally {
      state.inFlight = false;
      // A sample judged (and not kept to grow) is not looked at again: the next one starts now,
      // unless the active version changed meanwhile (its sample already started again).
      if (taken && !keepSample && !sampleStarted && state.activeVersion === served.version)
        startSampleAgain();
    }
  }

  /**
   * The traffic sample a recalibration draws from: this process's reservoir (not reset here: it
   * is once the sample was used or judged, not when it is postponed for too few usable rows) and, WORKERS > 1, the other processes' samples of the same active
   * version, folded one by one as they arrive into one uniform sample of at most the capacity
   * (uniformUnion), so this process never holds more than two samples' rows. Undefined (nothing
   * done, a later check tries again) when the samples that came hold fewer than
   * AUTO_RECALIBRATE_MIN_ROWS rows.
   */
  private async clusterSample(
    served: AvailableVersion,
    state: ModelTraffic,
  ): Promise<ClusterSample | undefined> {
    const reservoir = state.reservoir!;
    const collect = this.context.collectPeers();
    if (!collect) return reservoir.sample();
    const width = reservoir.width;
    const capacity = reservoir.capacity;
    let merged: UniformSample = { rows: new Float32Array(0), size: 0, seen: 0 };
    const leftOut: LeftOut[] = [];
    let answered = 0;
    const sizes = new Map<number, SampleSize>();
    const { leftOut: unanswered } = await collect(served.name, served.version, (worker, m) => {
      const mismatch = sampleMismatch(m, served.version, width);
      if (mismatch !== undefined) {
        leftOut.push({ worker, reason: mismatch });
        return;
      }
      try {
        const part = { rows: decodeSampleRows(m), size: m.size, seen: m.seen };
        merged = uniformUnion([merged, part], width, capacity, this.context.rng);
        sizes.set(worker, { model: m.model, version: served.version, size: m.size, seen: m.seen });
        answered++;
      } catch (e) {
        leftOut.push({ worker, reason: e instanceof Error ? e.message : String(e) });
      }
    });
    leftOut.push(...unanswered);
    // What the others hold now is what they answered (a worker left out is forgotten).
    this.context.peerSizes.set(served.name, sizes);
    if (state.activeVersion !== served.version) return undefined; // changed meanwhile
    const own = reservoir.sample();
    merged = uniformUnion([merged, own], width, capacity, this.context.rng);
    const workers = { workers: answered + 1, leftOut, deciderTrafficRows: own.seen };
    if (merged.size < this.context.options.autoMinRows) {
      this.context.log.info(
        { model: served.name, version: served.version, rows: merged.size, ...workers },
        'drift: the cluster traffic sample is too small; recalibration from traffic postponed',
      );
      return undefined;
    }
    return { ...merged, workers };
  }

  /** Runs the candidate on a copy of the rows the active version just answered, off the request. */
  shadow(
    served: AvailableVersion,
    state: ModelTraffic,
    input: Float32Array,
    rows: number,
    probabilities: Float32Array,
  ): void {
    const candidate = state.candidate!;
    const version = this.context.registry()?.get(served.name).versions.get(candidate.version);
    if (version?.state !== 'AVAILABLE' || candidate.version === served.version) {
      // Deleted, or promoted by hand: nothing left to compare.
      state.candidate = undefined;
      return;
    }
    if (state.shadowPendingRows + rows > MAX_SHADOW_PENDING_ROWS) return;
    const width = served.compiled.inputWidth;
    const x = input.slice(0, rows * width);
    const active = probabilities.slice(0, rows * served.compiled.outputWidth);
    state.shadowPendingRows += rows;
    this.track(
      new Promise<void>((resolve) => {
        setImmediate(() => {
          state.shadowPendingRows -= rows;
          try {
            const probe = this.context.probe(version, rows);
            const outputs = version.compiled.forward(x, rows, true, probe);
            // The candidate's outputs of a row may overflow where the active version's did not:
            // as for a refused request, such a run's statistics are not used, nor compared.
            const drift = probe && this.context.versions.get(version);
            if (!outputs.every(Number.isFinite)) drift?.refused(this.context.now());
            else {
              drift?.gathered(rows, this.context.now());
              const classes = version.compiled.outputWidth;
              const shadow = version.compiled.executor.softmax(outputs, rows, classes);
              candidate.shadow.add(active, shadow, rows, classes);
            }
          } catch (e) {
            this.context.log.error(
              { model: served.name, version: candidate.version, err: e },
              'shadow run failed',
            );
          }
          resolve();
        });
      }),
    );
  }
}
