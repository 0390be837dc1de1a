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
