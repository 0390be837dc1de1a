import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { NormserveError } from '../errors/index.js';
import {
  inputShapeOf,
  type RecalibrationRequest,
  type RecalibrationService,
  slices,
} from '../service/index.js';
import type { AppDeps } from './app-types.js';
import { OCTET_STREAM } from './binary-infer.js';
import { requestTimedOut } from './connection-limits.js';
import type { recalibrateBodySchema, recalibrateQuerySchema } from './schemas/admin.js';
import { traceContextOf } from './tracing.js';
import { float32Rows, ndjsonRows } from './upload-readers.js';

/** The streamed uploads of :recalibrate (JSON bodies are read whole). */
export const NDJSON = 'application/x-ndjson';
export const FLOAT32 = OCTET_STREAM;

type RecalibrateRequest = FastifyRequest<{
  Params: { name: string };
  Querystring: z.output<typeof recalibrateQuerySchema>;
  Body: z.output<typeof recalibrateBodySchema>;
}>;

/**
 * `:recalibrate`: options from the JSON body, else the query string; rows from the JSON body, or
 * streamed from an NDJSON or float32 upload; published at once (201), or as a job (202) for
 * large uploads and `Prefer: respond-async`.
 */
export function recalibrateHandler(
  { registry, config }: Pick<AppDeps, 'registry' | 'config'>,
  service: RecalibrationService,
) {
  return async (request: RecalibrateRequest, reply: FastifyReply) => {
    request.modelName = request.params.name;
    const contentType = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const streamed = contentType === NDJSON || contentType === FLOAT32;
    const json = streamed ? undefined : request.body;
    const q = request.query;
    const recalibration: RecalibrationRequest = {
      model: request.params.name,
      mode: json?.mode ?? q.mode ?? 'exact',
      priorStrength: json?.prior_strength ?? q.prior_strength,
      batchSize: json?.batch_size ?? q.batch_size,
      activate: json?.activate ?? q.activate ?? true,
      note: json?.note ?? q.note,
      trace: traceContextOf(request),
      parsedAsItArrives: contentType === NDJSON,
    };
    // A JSON body is checked whole before the model is locked, so a bad request never makes
    // a good one wait; streamed bodies are checked as they arrive.
    if (json)
      inputShapeOf(registry.resolve(recalibration.model)).readInstances(
        json.instances,
        'instances',
      );
    const session = await service.begin(recalibration);
    try {
      if (json) {
        // Checked again against the parent the session got (it may be newer than the
        // version the early check saw).
        const data = inputShapeOf(session.parent).readInstances(json.instances, 'instances');
        await session.pushAll(slices(data, 1024 * session.width));
      } else {
        const read = contentType === NDJSON ? ndjsonRows : float32Rows;
        await session.pushAll(
          read(
            request.body as unknown as Readable,
            session.width,
            config.RECALIBRATION_BODY_LIMIT_BYTES,
          ),
        );
      }
    } catch (e) {
      const error =
        e instanceof NormserveError &&
        e.code === 'CLIENT_ABORTED' &&
        requestTimedOut(request.raw.socket)
          ? new NormserveError(
              'REQUEST_TIMEOUT',
              `the upload did not arrive within REQUEST_TIMEOUT_MS (${config.REQUEST_TIMEOUT_MS} ms)`,
              { cause: e },
            )
          : e;
      await session.fail(error);
      throw error;
    }
    const prefersAsync = /\brespond-async\b/i.test(String(request.headers.prefer ?? ''));
    if (prefersAsync || session.rows > config.RECALIBRATION_ASYNC_ROWS) {
      session.complete().catch(() => undefined); // the job records the outcome
      const location = `/v1/jobs/${session.job.id}`;
      return reply
        .code(202)
        .header('Location', location)
        .send({ job_id: session.job.id, state: session.job.state, location });
    }
    const outcome = await session.complete();
    return reply
      .code(201)
      .header('Location', `/v1/models/${outcome.model}/versions/${outcome.version}`)
      .header('X-Model-Version', String(outcome.version))
      .send(outcome);
  };
}
