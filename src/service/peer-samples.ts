import type { TrafficSampleMessage } from './drift-share.js';

/**
 * A process left out of a cluster's traffic sample (or recent rows), and why; no `worker` when
 * it is not known which (the cluster primary did not answer at all).
 */
export interface LeftOut {
  worker?: number;
  reason: string;
}

/**
 * Why a process's sample cannot join one of `version` with rows of `width` (undefined: it can):
 * it has none, or it is of another version (a process that has not loaded the new version yet).
 */
export function sampleMismatch(
  m: TrafficSampleMessage,
  version: number,
  width: number,
): string | undefined {
  if (m.version === null) return 'no traffic sample';
  if (m.version !== version) return `its sample is of version ${m.version}`;
  if (m.width !== width) return `rows of width ${m.width}, not ${width}`;
  return undefined;
}

/**
 * Which rows a process gives when asked: its traffic sample (for a recalibration from traffic)
 * or its recent rows (for the before/after-BatchNorm pictures).
 */
export const SAMPLE_KINDS = ['traffic', 'recent'] as const;
export type SampleKind = (typeof SAMPLE_KINDS)[number];

/**
 * WORKERS > 1: asks every other process for its traffic sample (or recent rows) of a model
 * (through the cluster primary, cli/cluster-drift.ts); each answer is handed to `onSample` as it
 * arrives; resolves when all answered or the wait ended, with how many were asked and who was
 * left out.
 */
export type PeerSampleCollector = (
  model: string,
  version: number,
  onSample: (worker: number, sample: TrafficSampleMessage) => void,
  kind?: SampleKind,
) => Promise<{ asked: number; leftOut: LeftOut[] }>;
