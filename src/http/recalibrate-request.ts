import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest, preValidationHookHandler } from 'fastify';
import type { z } from 'zod';
import { NormserveError } from '../errors/index.js';
import {
  callerGone,
  checkModeOptions,
  checkRecalibrationCapacity,
  labelColumnFor,
  type RecalibrationRequest,
  type RecalibrationRows,
  type RecalibrationService,
  trainingInfoOf,
} from '../service/index.js';
import { NDJSON, OCTET_STREAM } from './accepted-types.js';
import type { AppDeps } from './app-types.js';
import { requestTimedOut } from './connection-limits.js';
import { CSV } from './csv-media-type.js';
import { mediaTypeOf } from './media-type.js';
import { setModelVersion } from './model-version-header.js';
import { preferenceNames } from './prefer.js';
import type { recalibrateBodySchema, recalibrateQuerySchema } from './schemas/admin.js';
import { readAsStream } from './streamed-body.js';
import { traceContextOf } from './tracing.js';
import { csvRows, float32Rows, ndjsonRows, uploadTooLarge } from './upload-readers.js';
import { isPlainObject } from './validation.js';

/** The streamed uploads of :recalibrate (JSON bodies are read whole). */
export { NDJSON };
export const FLOAT32 = OCTET_STREAM;
export { CSV };

/** The bodies read as streams, each held to RECALIBRATION_BODY_LIMIT_BYTES as it is read. */
export const STREAMED: readonly string[] = [NDJSON, FLOAT32, CSV];
/** Uploads parsed as text as they arrive (their first statistics overlap the parsing). */
const PARSED: readonly string[] = [NDJSON, CSV];

/** The mode and its options as a request names them (body fields and query parameters alike). */
const HTTP_OPTION_NAMES = {
  mode: 'mode',
  priorStrength: 'prior_strength',
  batchSize: 'batch_size',
} as const;

type RecalibrateRequest = FastifyRequest<{
  Params: { name: string };
  Querystring: z.output<typeof recalibrateQuerySchema>;
  Body: z.output<typeof recalibrateBodySchema>;
}>;

/**
 * A preValidation hook of :recalibrate: a JSON body's row count is judged before its rows, as
 * predict's is (predict-request.ts), so more rows than MAX_RECALIBRATION_SAMPLES are a 413
 * TOO_MANY_SAMPLES before zod or the shape check looks at millions of them (a 16.5 MB body of
 * 5.5 million empty rows held the event loop 2–3 s and answered a 400).
 */
export function refuseTooManyRows({ config }: Pick<AppDeps, 'config'>): preValidationHookHandler {
  return (request, _reply, done) => {
    const body: unknown = request.body;
    const rows = isPlainObject(body) ? body.instances : undefined;
    try {
      if (Array.isArray(rows))
        checkRecalibrationCapacity(0, rows.length, config.MAX_RECALIBRATION_SAMPLES);
      done();
    } catch (e) {
      done(e as Error);
    }
  };
}

/**
 * preParsing: an upload that says it is over RECALIBRATION_BODY_LIMIT_BYTES is a 413 before it
 * is read — before the model's lock, which it held (a 409 for every other recalibration of the
 * model) until it was read that far or REQUEST_TIMEOUT_MS cut it (the recalibration attacker of
 * 2026-12-04), and before a `100 Continue` invites its body (the second reader of 2026-12-04).
 * Only a body sent as it is read says its size; an encoded one is counted once decoded.
 */
export function refuseDeclaredOversize({ config }: Pick<AppDeps, 'config'>) {
  const limit = config.RECALIBRATION_BODY_LIMIT_BYTES;
  // Typed by what it reads, so that the route's own types are inferred from its schema.
  return (
    request: Pick<FastifyRequest, 'headers' | 'routeOptions'>,
    _reply: unknown,
    payload: Readable,
    done: (err: Error | null, value?: Readable) => void,
  ): void => {
    const encoding = String(request.headers['content-encoding'] ?? 'identity')
      .trim()
      .toLowerCase();
    const declared = Number(request.headers['content-length']);
    if (readAsStream(request) && encoding === 'identity' && declared > limit)
      done(uploadTooLarge(limit));
    else done(null, payload);
  };
}

/**
 * Running mode updates the statistics as the rows arrive, so it reads an upload only as fast as it
 * computes: with small batches the server, not the client, may be what made the upload late (a
 * reviewer: 1,000,000 rows at batch_size 2 were cut after 76 s, where exact mode took 4 s).
 */
function runningModeHint(recalibration: RecalibrationRequest): string {
  if (recalibration.mode !== 'running') return '';
  const batch =
    recalibration.batchSize === undefined ? '' : ` at batch_size ${recalibration.batchSize}`;
  return `. mode=running reads an upload only as fast as it updates the statistics${batch}, so the server may have been the slow side: a larger batch_size, mode=exact (which reads first) or a larger REQUEST_TIMEOUT_MS avoids it`;
}

/**
 * `:recalibrate`: options from the JSON body, else the query string; rows from the JSON body, or
 * streamed from an NDJSON, CSV or float32 upload; published at once (201), or as a job (202) for
 * large uploads and `Prefer: respond-async`.
 */
export function recalibrateHandler(
  { config }: Pick<AppDeps, 'config'>,
  service: RecalibrationService,
) {
  return async (request: RecalibrateRequest, reply: FastifyReply) => {
    const contentType = mediaTypeOf(request.headers['content-type']);
    const streamed = STREAMED.includes(contentType);
    const json = streamed ? undefined : request.body;
    const q = request.query;
    if (q.label_column !== undefined && contentType !== CSV) {
      const message = `read from a ${CSV} upload only`;
      throw new NormserveError('INVALID_INPUT', `label_column: ${message}`, {
        errors: [{ path: 'query.label_column', message }],
      });
    }
    const recalibration: RecalibrationRequest = {
      model: request.params.name,
      mode: json?.mode ?? q.mode ?? 'exact',
      priorStrength: json?.prior_strength ?? q.prior_strength,
      batchSize: json?.batch_size ?? q.batch_size,
      activate: json?.activate ?? q.activate ?? true,
      note: json?.note ?? q.note,
      trace: traceContextOf(request),
      parsedAsItArrives: PARSED.includes(contentType),
    };
    // An option nothing would read is refused, not ignored, in the CLI's words; its path says
    // where it was found, as the schemas' errors do (`batch_size` in the body, `query.batch_size`).
    checkModeOptions(
      recalibration,
      HTTP_OPTION_NAMES,
      (json?.mode ?? q.mode) === undefined,
      (key) => {
        const name = HTTP_OPTION_NAMES[key];
        return json?.[name] !== undefined ? name : `query.${name}`;
      },
    );
    const body = request.body as unknown as Readable;
    const limit = config.RECALIBRATION_BODY_LIMIT_BYTES;
    const rows: RecalibrationRows = json
      ? { instances: json.instances, path: 'instances' }
      : contentType === CSV
        ? {
            read: (parent, width, received) => {
              const training = trainingInfoOf(parent.checkpoint.config);
              const model = { name: recalibration.model, inputWidth: width, ...training };
              return csvRows(
                body,
                model,
                labelColumnFor(model, q.label_column),
                limit,
                q.label_column,
                received,
              );
            },
          }
        : {
            read: (_parent, width, received) =>
              (contentType === NDJSON ? ndjsonRows : float32Rows)(body, width, limit, received),
          };
    // REQUEST_TIMEOUT_MS's cut of the upload ends the reading here, and the 408 is answered
    // once the job has failed and given the model's lock back (connection-limits.ts).
    const receiving = new AbortController();
    if (!json) {
      request.onReceiveTimeout = () => receiving.abort(callerGone());
      // Received whole: a later cut on this connection is another request's.
      request.raw.once('end', () => {
        request.onReceiveTimeout = undefined;
      });
    }
    const prefersJob = preferenceNames(request.headers.prefer).has('respond-async');
    const started = await service.recalibrate(recalibration, rows, {
      receiving: receiving.signal,
      acceptsJob: true,
      // A refusal is this request's 4xx, on its request line alone (docs/errors.md).
      answersRefusals: true,
      prefersJob,
      // A dropped upload that REQUEST_TIMEOUT_MS cut is named as the timeout it was.
      readFailed: (e, rowsRead) =>
        e instanceof NormserveError &&
        e.code === 'CLIENT_ABORTED' &&
        requestTimedOut(request.raw.socket)
          ? new NormserveError(
              'REQUEST_TIMEOUT',
              `the upload did not arrive within REQUEST_TIMEOUT_MS (${config.REQUEST_TIMEOUT_MS} ms); ${rowsRead} rows had been read${runningModeHint(recalibration)}`,
              { cause: e },
            )
          : e,
    });
    if ('job' in started) {
      const { job } = started;
      const location = `/v1/jobs/${job.id}`;
      // RFC 7240 §3: the preference was honoured (a large upload is a job whatever it asks).
      if (prefersJob) reply.header('Preference-Applied', 'respond-async');
      return reply
        .code(202)
        .header('Location', location)
        .send({ job_id: job.id, state: job.state, location });
    }
    const { outcome } = started;
    return setModelVersion(reply, outcome.version)
      .code(201)
      .header('Location', `/v1/models/${outcome.model}/versions/${outcome.version}`)
      .send(outcome);
  };
}
