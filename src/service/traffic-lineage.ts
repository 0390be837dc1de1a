import { z } from 'zod';
import type { ModelSnapshot } from './model-registry.js';

/** What a version recalibrated from traffic records of its parent (config.json's provenance). */
const trafficProvenanceSchema = z.looseObject({
  kind: z.literal('recalibration'),
  source: z.literal('traffic'),
  parent_version: z.number().int(),
});

/**
 * The version that AUTO_RECALIBRATE recalibrated from `version`'s traffic, if the repository
 * holds one: read from the versions' provenance, so that "each version is recalibrated
 * automatically at most once" holds for every process and replica sharing the repository and
 * across restarts, not only in the process that did it. A version that did not load (FAILED) is
 * not read; one deleted no longer counts.
 */
export function trafficChildOf(snapshot: ModelSnapshot, version: number): number | undefined {
  for (const v of snapshot.versions.values()) {
    if (v.state !== 'AVAILABLE') continue;
    const provenance = trafficProvenanceSchema.safeParse(v.checkpoint.config.provenance);
    if (provenance.success && provenance.data.parent_version === version) return v.version;
  }
  return undefined;
}

/** What a version recalibrated from traffic records of when it was made. */
const trafficCreatedSchema = z.looseObject({
  kind: z.literal('recalibration'),
  source: z.literal('traffic'),
  created_at: z.iso.datetime(),
});

/**
 * The newest version AUTO_RECALIBRATE published, by its provenance's `created_at` (the wall clock
 * of the process that made it), if the repository holds one: so that AUTO_RECALIBRATE_INTERVAL_MS
 * holds for every process and replica sharing the repository and across restarts. A version that
 * did not load (FAILED) is not read; one deleted no longer counts.
 */
export function lastTrafficRecalibration(
  snapshot: ModelSnapshot,
): { version: number; createdAtMs: number } | undefined {
  let last: { version: number; createdAtMs: number } | undefined;
  for (const v of snapshot.versions.values()) {
    if (v.state !== 'AVAILABLE') continue;
    const provenance = trafficCreatedSchema.safeParse(v.checkpoint.config.provenance);
    if (!provenance.success) continue;
    // A time ahead of this clock (another replica's clock runs ahead) counts as now: it would
    // otherwise hold the recalibrations back by the clocks' difference, or for good.
    const createdAtMs = Math.min(Date.parse(provenance.data.created_at), Date.now());
    if (last === undefined || createdAtMs > last.createdAtMs)
      last = { version: v.version, createdAtMs };
  }
  return last;
}

/**
 * Why a recalibration from `expected`'s traffic must not start now that the model's lock is held
 * and its versions were read again (undefined: it may): another version became active, in this
 * process or another, or another process already recalibrated `expected` from its traffic.
 */
export function trafficParentRefusal(
  snapshot: ModelSnapshot,
  expected: number,
): string | undefined {
  if (snapshot.active !== expected)
    return `version ${expected} of "${snapshot.name}" is no longer the active version (${snapshot.active === undefined ? 'none is' : `version ${snapshot.active} is`}): its traffic sample describes another version's inputs`;
  const child = trafficChildOf(snapshot, expected);
  if (child !== undefined)
    return `version ${expected} of "${snapshot.name}" was already recalibrated from its traffic (version ${child}, by this or another process sharing the repository): each version is recalibrated automatically at most once`;
  return undefined;
}
