import { z } from 'zod';
import { type ProcessOwner, STALE_AFTER_MS } from '../repository/index.js';

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
 * A job record as `<repository>/.jobs/<id>.json` holds it and GET /v1/jobs/{id} answers it.
 * Records are read back by other processes, so they are parsed, not cast. `owner` and
 * `heartbeat_at` say which process runs a `running` job and when it last showed it was alive;
 * records written before they existed fall back to `updated_at`.
 */
export const jobRecordSchema = z.object({
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
  owner: z.object({ host: z.string(), pid: z.number().int().positive() }).optional(),
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

export type Job = z.output<typeof jobRecordSchema>;
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
