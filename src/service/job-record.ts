import { z } from 'zod';
import { describeLocations, issuesToLocations, safeParseWorded } from '../errors/index.js';
import {
  JOBS_DIR,
  type ProcessOwner,
  processOwnerSchema,
  STALE_AFTER_MS,
} from '../repository/index.js';
import { recalibrationOutcomeSchema } from './recalibration-outcome.js';

/**
 * What ties a job to the request that started it, so it can be followed from a proxy's log to the
 * worker's request line to the job: the request id (X-Request-Id) and, when the request carried a
 * W3C traceparent, its trace-id and parent-id.
 */
export const traceContextSchema = z.object({
  request_id: z.string().optional(),
  trace_id: z.string().optional(),
  parent_id: z.string().optional(),
});
export type TraceContext = z.output<typeof traceContextSchema>;

/**
 * The fields of a job record as `<repository>/.jobs/<id>.json` holds it, its result left to
 * `jobFromRecord`. `owner` and `heartbeat_at` say which process runs a `running` job and when it
 * last showed it was alive; records written before they existed fall back to `updated_at`.
 */
const jobEnvelopeSchema = z.object({
  id: z.string(),
  kind: z.literal('recalibration'),
  model: z.string(),
  state: z.enum(['running', 'succeeded', 'failed']),
  /** What the job is doing: receiving rows, computing statistics, publishing. */
  phase: z.string(),
  progress: z.object({
    rows: z.number().int().nonnegative(),
    total_rows: z.number().int().nonnegative().nullable(),
  }),
  created_at: z.string(),
  updated_at: z.string(),
  owner: processOwnerSchema.optional(),
  heartbeat_at: z.string().optional(),
  ...traceContextSchema.shape,
  result: z.unknown().optional(),
  error: z
    .object({
      code: z.string(),
      message: z.string(),
      errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    })
    .optional(),
});

/**
 * A job as a record holds it and GET /v1/jobs/{id} answers it, its result the recalibration's
 * outcome. Records are read back by other processes, so they are parsed, not cast (jobFromRecord).
 */
export const jobRecordSchema = jobEnvelopeSchema.extend({
  result: recalibrationOutcomeSchema.optional(),
});

export type Job = z.output<typeof jobRecordSchema>;

/**
 * The job a record read from disk holds, or undefined when it is no job record. A record whose
 * fields are a job's but whose result is not a recalibration outcome (written by another build,
 * or damaged) is the job failed with REPOSITORY_ERROR, naming what is wrong: the result cannot be
 * answered under its documented type, and the state it was recorded with cannot be trusted
 * without it (a version may have been published; the model's listing tells).
 */
export function jobFromRecord(data: unknown): Job | undefined {
  const envelope = jobEnvelopeSchema.safeParse(data);
  if (!envelope.success) return undefined;
  const { result, ...job } = envelope.data;
  if (result === undefined) return job;
  const outcome = safeParseWorded(recalibrationOutcomeSchema, result);
  if (outcome.success) return { ...job, result: outcome.data };
  const errors = issuesToLocations(outcome.error.issues, 'result');
  return {
    ...job,
    state: 'failed',
    phase: 'failed',
    error: {
      code: 'REPOSITORY_ERROR',
      message: `${JOBS_DIR}/${job.id}.json records the job as ${job.state} but its result is not a recalibration outcome (${describeLocations(errors)}); GET /v1/models/${job.model} lists the versions it may have published`,
      errors,
    },
  };
}
export type JobState = Job['state'];

/** Why a `running` record is taken as abandoned, or undefined while its owner may be alive. */
export type Abandonment =
  | { reason: 'owner-gone'; owner: ProcessOwner }
  | { reason: 'heartbeat-stale'; ageMs: number };

/**
 * The rule every reader applies to a `running` job of another process: abandoned when its owner
 * is a process of this host that no longer exists (`isGone`, probed at once), or when its last
 * heartbeat is more than `staleMs` older (an owner on another host, or a pid reused since) or
 * newer than this clock.
 */
export function abandonment(
  job: Job,
  nowMs: number,
  isGone: (owner: ProcessOwner) => boolean,
  staleMs = STALE_AFTER_MS,
): Abandonment | undefined {
  if (job.state !== 'running') return undefined;
  if (job.owner && isGone(job.owner)) return { reason: 'owner-gone', owner: job.owner };
  const beat = Date.parse(job.heartbeat_at ?? job.updated_at);
  const ageMs = Number.isFinite(beat) ? nowMs - beat : Number.POSITIVE_INFINITY;
  // Either way, as for the model lock (model-lock.ts): a heartbeat more than staleMs ahead of this
  // clock is no heartbeat but a clock set wrong, and would otherwise keep the job running until
  // the clock caught up with it.
  return Math.abs(ageMs) > staleMs ? { reason: 'heartbeat-stale', ageMs } : undefined;
}
