import { z } from 'zod';
import { autoStatusSchema } from './auto-status-schema.js';

/**
 * What one server process tells the others about the drift it saw (WORKERS > 1: the cluster
 * primary relays it), so that every process reports the drift of all the traffic:
 *
 * - `versions`: per model version, the moments (count, mean, M2 per channel of each BatchNorm's
 *   input) its own traffic added to each time window since its last share — deltas, which the
 *   receiver merges into the same windows with Chan's pairwise update, so no row is counted twice;
 * - `auto`: from the one process that decides AUTO_RECALIBRATE (the primary names it), the
 *   automatic recalibration state of each model it watches, which the others report as theirs;
 * - `samples`: per model, how many rows this process's traffic sample holds and stands for (with
 *   AUTO_RECALIBRATE=candidate|promote every process keeps one), so the decider knows when the
 *   cluster's samples together hold AUTO_RECALIBRATE_MIN_ROWS rows. The rows themselves travel
 *   only when the decider asks for them (trafficSampleSchema).
 *
 * Parsed on receipt like every IPC message (cluster-messages.ts).
 */
const finite = z.number().finite();

export const sharedWindowSchema = z.object({
  /** Start of the window, ms since the epoch (a multiple of DRIFT_WINDOW_MS). */
  start: finite,
  rows: z.number().int().nonnegative(),
  /** Per BatchNorm of the version, in the plan's order. */
  layers: z.array(
    z.object({
      count: z.number().int().nonnegative(),
      mean: z.array(finite),
      m2: z.array(finite),
    }),
  ),
});
export type SharedWindow = z.output<typeof sharedWindowSchema>;

/** AutoRecalibrationStatus as the deciding process shares it (a candidate's drift is merged anew). */
export const sharedAutoStatusSchema = autoStatusSchema.omit({ mode: true }).extend({
  model: z.string(),
  /** Versions already recalibrated automatically (never twice: a process that decides next knows). */
  auto_parents: z.array(z.number().int().positive()),
});
export type SharedAutoStatus = z.output<typeof sharedAutoStatusSchema>;

/** The size of one process's traffic sample of a model (rows held, rows they stand for). */
export const sampleSizeSchema = z.object({
  model: z.string(),
  /** The active version whose traffic the sample holds. */
  version: z.number().int().positive(),
  size: z.number().int().nonnegative(),
  seen: z.number().int().nonnegative(),
});
export type SampleSize = z.output<typeof sampleSizeSchema>;

/**
 * One process's traffic sample of a model, sent to the deciding process when it is about to
 * recalibrate from traffic (cluster-drift.ts): `size` rows drawn uniformly from the `seen` rows
 * the active `version` served since it became active, as float32 bytes in base64 (exact, and
 * a third of the JSON numbers' size). `version` null: no sample (no active traffic seen).
 */
export const trafficSampleSchema = z
  .object({
    model: z.string(),
    version: z.number().int().positive().nullable(),
    width: z.number().int().positive(),
    size: z.number().int().nonnegative(),
    seen: z.number().int().nonnegative(),
    rows: z.base64(),
  })
  .refine((s) => s.size <= s.seen, { message: 'a sample holds at most the rows it stands for' })
  .refine((s) => Buffer.byteLength(s.rows, 'base64') === s.size * s.width * 4, {
    message: 'rows must hold size × width float32 values',
  });
export type TrafficSampleMessage = z.output<typeof trafficSampleSchema>;

/** A sample's rows as the message carries them. */
export function encodeSampleRows(rows: Float32Array): string {
  return Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength).toString('base64');
}

/** A message's rows as float32 values (a copy, aligned). */
export function decodeSampleRows(message: TrafficSampleMessage): Float32Array {
  const bytes = Buffer.from(message.rows, 'base64');
  const rows = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(rows.buffer).set(bytes);
  return rows;
}

export const driftShareSchema = z.object({
  versions: z.array(
    z.object({
      model: z.string(),
      version: z.number().int().positive(),
      windows: z.array(sharedWindowSchema),
    }),
  ),
  auto: z.array(sharedAutoStatusSchema).optional(),
  samples: z.array(sampleSizeSchema).optional(),
});
export type DriftShare = z.output<typeof driftShareSchema>;
