import type { Readable } from 'node:stream';
import { ACTIVE_RECORD_LOCK_WAIT_MS } from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import { CONTENT_ENCODING_DOC } from '../content-encoding.js';
import { checkCsvMediaType } from '../csv-media-type.js';
import { recalibrationBudget } from '../json-budget.js';
import { modelVersionHeaderDoc } from '../model-version-header.js';
import {
  CSV,
  FLOAT32,
  NDJSON,
  recalibrateHandler,
  refuseDeclaredOversize,
  refuseTooManyRows,
  STREAMED,
} from '../recalibrate-request.js';
import {
  acceptedSchema,
  recalibrateBodySchema,
  recalibrateQuerySchema,
  recalibrationOutcomeSchema,
} from '../schemas/admin.js';
import {
  ADMIN_TAGS,
  admin503,
  adminErrors,
  STORAGE_UNAVAILABLE_DOC,
} from '../schemas/admin-errors.js';
import {
  activeVersionErrorResponses,
  MODEL_NAME_ROUTE_PARAM,
  nameParams,
  problemSchema,
} from '../schemas/common.js';
import { withRowFields } from '../validation.js';

/**
 * A recalibration’s temporary spill file (SpillingRowStore: its rows past
 * RECALIBRATION_MEMORY_BYTES, under TMPDIR) that the storage refuses: 503, or 507 when full.
 */
const SPILL_FILE =
  'the recalibration’s temporary spill file (its rows past RECALIBRATION_MEMORY_BYTES, under TMPDIR), named by its absolute path';
const SPILL_UNAVAILABLE_DOC = `The same code for ${SPILL_FILE} that cannot be written or read, or that another process shortened; nothing was published`;
const SPILL_FULL_DOC = `The same code when ${SPILL_FILE} finds its storage full; nothing was published`;

/**
 * The admin recalibrate route: JSON, NDJSON, CSV or float32 uploads, streamed, handed to
 * recalibrate-request.ts. Registered by routes/admin.ts inside the admin scope, so it shares the
 * admin rate limit's counter; the token check comes with its `access: 'admin'` (route-access.ts).
 */
export async function recalibrateRoutes(app: AppInstance): Promise<void> {
  const { registry, config, recalibration: service } = app.deps;
  // The recalibrate route reads NDJSON, CSV and float32 bodies as streams; its own scope keeps these
  // parsers away from every other route (which stay JSON only).
  await app.register(async (scope: AppInstance) => {
    const passStream = (
      _request: unknown,
      payload: Readable,
      done: (err: Error | null, body?: unknown) => void,
    ) => done(null, payload);
    // Its log line and metric labels name the model, when the server has it.
    scope.addHook('onRequest', attributeModel(registry));
    // A JSON body's row count before its rows (recalibrate-request.ts).
    scope.addHook('preValidation', refuseTooManyRows(app.deps));
    scope.addContentTypeParser(NDJSON, passStream);
    scope.addContentTypeParser(FLOAT32, passStream);
    // A charset other than UTF-8's is a 415 before the body is read.
    scope.addContentTypeParser(CSV, (request, payload: Readable, done) => {
      try {
        checkCsvMediaType(request.headers['content-type'] ?? '');
      } catch (e) {
        done(e as Error);
        return;
      }
      done(null, payload);
    });

    const recalibrate = recalibrateHandler(app.deps, service);
    scope.post(
      `/v1/models/${MODEL_NAME_ROUTE_PARAM}::recalibrate`,
      {
        // NDJSON, CSV and float32 uploads are read as streams and held to their own limit, decoded;
        // a JSON body with millions of empty rows is a 413 before it is parsed (json-budget.ts).
        config: {
          access: 'admin',
          streamedBody: STREAMED,
          jsonBudget: recalibrationBudget(registry, config),
        },
        bodyLimit: config.BODY_LIMIT_BYTES,
        // An upload whose Content-Length is over its limit, before it is read: a route's own hook,
        // so after its access guard (a scope's hooks run before the route's: a client without the
        // token was told the limit) and before the 100 Continue (expectations.ts, appended last).
        preParsing: refuseDeclaredOversize(app.deps),
        schema: {
          tags: ADMIN_TAGS,
          summary: 'Recalibrate BatchNorm statistics on unlabeled rows and publish a new version',
          description: [
            'Recomputes every BatchNorm running mean and variance on the posted rows (AdaBN), re-folds, and publishes the result as the next version, atomically; with `activate` (default) it is served at once.',
            `Bodies: \`application/json\` (this schema), \`${NDJSON}\` (one JSON array of features per line), \`${CSV}\` (UTF-8, a header row naming the columns, as \`npm run recalibrate -- --data file.csv\` reads it: the model's recorded feature names' columns, in any order, when the header has them all; every column but \`label_column\`, in file order, when it has none of them; 400 when it has only some) or \`${FLOAT32}\` (little-endian float32 rows); for these three, options in the query string. They are read as a stream, and a bad line is named in the problem (\`line 7, column "b": "x" is not a finite number\`).`,
            `More than RECALIBRATION_ASYNC_ROWS rows (default ${config.RECALIBRATION_ASYNC_ROWS}), or \`Prefer: respond-async\`, answer 202 with \`Location: /v1/jobs/{id}\` once the upload is received.`,
            'A second recalibration of the same model while one runs answers 409 with `job_id` naming the running job (`GET /v1/jobs/{id}`), or, when `npm run recalibrate` is running it, with `holder` naming that process (`cli`, `host`, `pid`, `since`) and no job id: the CLI keeps its job to itself.',
            CONTENT_ENCODING_DOC,
          ].join('\n\n'),
          consumes: ['application/json', NDJSON, CSV, FLOAT32],
          params: nameParams,
          querystring: recalibrateQuerySchema,
          body: withRowFields(recalibrateBodySchema, ['instances']),
          response: {
            201: recalibrationOutcomeSchema.meta({
              description: 'Published (Location: the new version)',
              headers: {
                Location: {
                  type: 'string',
                  description: 'The new version: `/v1/models/{name}/versions/{version}`',
                },
                ...modelVersionHeaderDoc('The new version'),
              },
            }),
            202: acceptedSchema.meta({
              description: 'Running as a job (Location: /v1/jobs/{id})',
              headers: {
                Location: { type: 'string', description: 'The job: `/v1/jobs/{id}`' },
                'Preference-Applied': {
                  type: 'string',
                  description: '`respond-async` when the request asked for it (RFC 7240)',
                },
              },
            }),
            ...adminErrors,
            408: problemSchema.describe(
              'REQUEST_TIMEOUT: the upload did not arrive within REQUEST_TIMEOUT_MS (a stalled or too slow client); nothing was published, and a job records the rows received',
            ),
            422: problemSchema.describe(
              'NOT_RECALIBRATABLE: the model has no BatchNorm layer, so there are no statistics to recompute',
            ),
            413: problemSchema.describe(
              `Body larger than BODY_LIMIT_BYTES, or a streamed upload larger than RECALIBRATION_BODY_LIMIT_BYTES (BODY_TOO_LARGE); more rows than MAX_RECALIBRATION_SAMPLES, or a JSON body with more arrays and objects than that many samples of the model can be written with, refused before it is parsed (TOO_MANY_SAMPLES)`,
            ),
            503: admin503(
              `${activeVersionErrorResponses[503].description}. Or ACTIVE_RECORD_BUSY, with Retry-After, when the served version must first be pinned in the model's active-version record (there is none, or it names another version; it is written before publishing) and the record’s lock stays held for ${ACTIVE_RECORD_LOCK_WAIT_MS / 1000} s: no version was published. Once the version is published, a busy lock only leaves it not activated (201, not_activated.code ACTIVE_RECORD_BUSY). Or ${STORAGE_UNAVAILABLE_DOC}. ${SPILL_UNAVAILABLE_DOC} Or, with Retry-After: 1, SHUTTING_DOWN: the server is shutting down (from SIGTERM on), the recalibration was not started; or JOB_INTERRUPTED: the shutdown's budget for jobs ran out while this request still uploaded or computed, nothing was published`,
            ),
            507: problemSchema.describe(`${adminErrors[507].description}. ${SPILL_FULL_DOC}`),
          },
        },
      },
      recalibrate,
    );
  });
}
