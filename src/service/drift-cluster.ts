import type { AutoRecalibration } from './auto-recalibration.js';
import type { DriftContext } from './drift-context.js';
import {
  type DriftShare,
  encodeSampleRows,
  type SampleSize,
  type SharedAutoStatus,
  type TrafficSampleMessage,
} from './drift-share.js';

/**
 * WORKERS > 1: what a DriftService tells the other processes of its traffic (takeShare, its
 * traffic sample when asked) and merges from theirs (mergeShare); DriftService delegates.
 */
export class DriftCluster {
  /** Versions recalibrated automatically by a process that decided before this one. */
  readonly inheritedParents = new Map<string, Set<number>>();
  /** The automatic state as last shared (JSON), so that an unchanged one is not sent again. */
  private autoTold = '[]';
  /** The sample sizes as last shared (JSON). */
  private samplesTold = '[]';

  constructor(
    private readonly context: DriftContext,
    private readonly auto: AutoRecalibration,
  ) {}

  /**
   * This process starts or stops deciding (DriftService.setDecides): its automatic state is told
   * again; a process that takes over knows which versions the previous one recalibrated.
   */
  decidesNow(decides: boolean): void {
    this.autoTold = '[]';
    if (!decides) return;
    for (const [model, status] of this.context.remoteAuto) {
      const state = this.context.models.get(model);
      const parents = state?.autoParents ?? new Set<number>();
      for (const p of status.auto_parents) parents.add(p);
      if (state) state.last ??= status.last_action ?? undefined;
      else this.inheritedParents.set(model, parents);
    }
    this.context.remoteAuto.clear();
  }

  /**
   * What this process saw since its last share (its own traffic's moments per version and
   * window) and, when it decides, its automatic recalibration state; undefined when there is
   * nothing new to tell.
   */
  takeShare(): DriftShare | undefined {
    const now = this.context.now();
    const versions: DriftShare['versions'] = [];
    for (const model of this.context.registry()?.list() ?? []) {
      for (const v of model.versions.values()) {
        if (v.state !== 'AVAILABLE') continue;
        const drift = this.context.versions.get(v);
        if (!drift) continue;
        const windows = drift.takeShare(now);
        if (windows.length > 0) versions.push({ model: model.name, version: v.version, windows });
      }
    }
    let auto: SharedAutoStatus[] = [];
    if (this.context.deciding() && this.context.options.autoRecalibrate !== 'off') {
      for (const [name, state] of this.context.models) {
        const { mode: _mode, candidate, ...status } = this.auto.autoStatus(name, []);
        auto.push({
          model: name,
          ...status,
          auto_parents: [...state.autoParents],
          candidate: candidate && {
            version: candidate.version,
            parent_version: candidate.parent_version,
            published_at: candidate.published_at,
            shadow: candidate.shadow,
          },
        });
      }
    }
    // The automatic state is told when it changed (and each time this process starts deciding).
    const told = JSON.stringify(auto);
    if (told === this.autoTold) auto = [];
    else this.autoTold = told;
    // So are the sizes of this process's traffic samples (every process keeps one).
    let samples: SampleSize[] = [];
    for (const [model, state] of this.context.models)
      if (state.reservoir && state.activeVersion !== undefined)
        samples.push({
          model,
          version: state.activeVersion,
          size: state.reservoir.size,
          seen: state.reservoir.seen,
        });
    const sizes = JSON.stringify(samples);
    if (sizes === this.samplesTold) samples = [];
    else this.samplesTold = sizes;
    if (versions.length === 0 && auto.length === 0 && samples.length === 0) return undefined;
    return {
      versions,
      ...(auto.length > 0 ? { auto } : {}),
      ...(samples.length > 0 ? { samples } : {}),
    };
  }

  /**
   * This process's traffic sample of a model (asked for by the deciding process): the rows the
   * active version served since it became active, as a uniform sample, with the count they
   * stand for.
   */
  trafficSample(model: string): TrafficSampleMessage {
    const state = this.context.models.get(model);
    const reservoir = state?.reservoir;
    const width = reservoir?.width ?? 1;
    if (!reservoir || state.activeVersion === undefined)
      return { model, version: null, width, size: 0, seen: 0, rows: '' };
    return {
      model,
      version: state.activeVersion,
      width,
      size: reservoir.size,
      seen: reservoir.seen,
      rows: encodeSampleRows(reservoir.rows()),
    };
  }

  /**
   * Merges what another process shared (its traffic's moments and sample sizes; the decider's
   * auto state). `from` names the sender (its cluster worker id).
   */
  mergeShare(share: DriftShare, from = 0): void {
    for (const size of share.samples ?? []) {
      const peers = this.context.peerSizes.get(size.model) ?? new Map<number, SampleSize>();
      this.context.peerSizes.set(size.model, peers);
      peers.set(from, size);
    }
    this.mergeMoments(share);
    if (!this.context.deciding()) {
      for (const status of share.auto ?? []) this.context.remoteAuto.set(status.model, status);
      return;
    }
    // The cluster's samples grew: the decider looks at once (the rows that complete the minimum
    // may be another worker's, with none of its own to follow for a while).
    const now = this.context.now();
    const registry = this.context.registry();
    for (const size of share.samples ?? []) {
      const state = this.context.models.get(size.model);
      if (!state || !registry?.has(size.model)) continue;
      const model = registry.get(size.model);
      const served = model.active === undefined ? undefined : model.versions.get(model.active);
      if (served?.state === 'AVAILABLE' && state.activeVersion === served.version)
        this.auto.check(served, state, now);
    }
  }

  /** Merges another process's moments into the versions' windows. */
  private mergeMoments(share: DriftShare): void {
    const now = this.context.now();
    const registry = this.context.registry();
    for (const v of share.versions) {
      if (!registry?.has(v.model)) continue;
      const served = registry.get(v.model).versions.get(v.version);
      // A version this process has not loaded (yet, or any more): its share is not kept.
      if (served?.state !== 'AVAILABLE') continue;
      try {
        this.context.versionDrift(served)?.mergeShared(now, v.windows);
      } catch (e) {
        this.context.log.warn(
          { model: v.model, version: v.version, err: e },
          'shared drift statistics ignored',
        );
      }
    }
  }
}
