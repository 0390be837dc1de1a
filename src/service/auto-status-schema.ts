import { z } from 'zod';
import type { ShadowSummary } from '../drift/index.js';
import { AUTO_RECALIBRATE_MODES } from './drift-settings.js';

/**
 * The automatic recalibration state of a model (AUTO_RECALIBRATE), defined once: what the
 * deciding process shares with the others (drift-share.ts, parsed on receipt), what
 * AutoRecalibration reports (its type), and what GET /v1/models/{name}/drift documents and sends
 * (http/schemas/drift.ts adds the descriptions and the candidate's drift report). It was written
 * three times, as an interface, the IPC schema and the HTTP schema (review58).
 */
const finite = z.number().finite();

export const autoActionSchema = z.object({
  action: z.enum(['recommend', 'candidate', 'promote']),
  outcome: z.enum(['succeeded', 'failed', 'skipped']),
  version: z.number().int().positive().optional(),
  at: z.string(),
  detail: z.string().optional(),
});
/** The last automatic action of a model. */
export type AutoActionRecord = z.output<typeof autoActionSchema>;
export type AutoAction = AutoActionRecord['action'];
export type AutoOutcome = AutoActionRecord['outcome'];

const shadowSide = z.object({ mean_entropy: finite, mean_confidence: finite });

/**
 * What can be said of a candidate's answers next to the active version's on the same rows: the
 * drift layer's ShadowSummary (drift/ uses no zod), checked against it here so the two cannot part.
 */
export const shadowSummarySchema = z.object({
  rows: z.number().int().nonnegative(),
  agreement: finite,
  active: shadowSide,
  candidate: shadowSide,
}) satisfies z.ZodType<ShadowSummary>;

/** A candidate version published from traffic, with its shadow comparison so far. */
export const autoCandidateSchema = z.object({
  version: z.number().int().positive(),
  parent_version: z.number().int().positive(),
  published_at: z.string(),
  shadow: shadowSummarySchema,
});

/** The fields every form of the state has (the shared one adds the model and its parents). */
export const autoStatusSchema = z.object({
  mode: z.enum(AUTO_RECALIBRATE_MODES),
  /** Rows held in the traffic sample (never written anywhere but a new version's data hash). */
  sample_rows: z.number().int().nonnegative(),
  sample_capacity: z.number().int().nonnegative(),
  in_progress: z.boolean(),
  last_action: autoActionSchema.nullable(),
  candidate: autoCandidateSchema.nullable(),
});
