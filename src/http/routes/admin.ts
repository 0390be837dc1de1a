import type { Readable } from 'node:stream';
import rateLimit from '@fastify/rate-limit';
import { z } from 'zod';
import { NormserveError } from '../../errors/index.js';
import {
  ACTIVE_RECORD_LOCK_WAIT_MS,
  storageErrnos,
  storageWarningOf,
} from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { CONTENT_ENCODING_DOC } from '../content-encoding.js';
import { checkCsvMediaType } from '../csv-media-type.js';
import { untypedBodyAsJson } from '../json-body.js';
import { recalibrationBudget } from '../json-budget.js';
import { beforeVerb } from '../not-found.js';
import { adminRateLimit } from '../rate-limit.js';
import {
  CSV,
  FLOAT32,
  NDJSON,
  recalibrateHandler,
  refuseTooManyRows,
} from '../recalibrate-request.js';
import {
  acceptedSchema,
  activateBodySchema,
  activationSchema,
  jobSchema,
  recalibrateBodySchema,
  recalibrateQuerySchema,
  recalibrationOutcomeSchema,
  storageWarningSchema,
} from '../schemas/admin.js';
import {
  activeVersionErrorResponses,
  errorResponses,
  MODEL_NAME_ROUTE_PARAM,
  nameParams,
  problemSchema,
  versionParams,
} from '../schemas/common.js';
import { withRowFields } from '../validation.js';
import { listModel } from '../views/model-listing.js';

/** A failed write of the repository with one of `code`'s errnos (storage-failure.ts), in words. */
function storageFailureDoc(code: 'STORAGE_FULL' | 'STORAGE_UNAVAILABLE'): string {
  const errnos = storageErrnos(code);
  const list =
    errnos.length > 1 ? `${errnos.slice(0, -1).join(', ')} or ${errnos.at(-1)}` : errnos.join('');
  return `a write of the model repository failed with ${list} before it took effect (the detail names the operation, the errno and the path relative to the repository)`;
}

const adminErrors = {
  ...errorResponses,
  401: problemSchema.describe('Missing or wrong bearer token (WWW-Authenticate: Bearer)'),
  409: problemSchema.describe(
    'A recalibration of this model is running (job_id names its job; holder, instead, the recalibrate CLI process running it), or the version is active',
  ),
  429: problemSchema.describe(
    'Admin rate limit exceeded (ADMIN_RATE_LIMIT_PER_MINUTE, or ADMIN_AUTH_FAILURES_PER_MINUTE for requests without the valid token)',
  ),
  507: problemSchema.describe(
    `STORAGE_FULL: ${storageFailureDoc('STORAGE_FULL')}; nothing was changed`,
  ),
};

/** The 503 of a write of the repository that its storage refused (storage-failure.ts). */
const STORAGE_UNAVAILABLE_DOC = `STORAGE_UNAVAILABLE: ${storageFailureDoc('STORAGE_UNAVAILABLE')}; nothing was changed. A failure after the rename that made the change is no error: the success answer carries \`warning\``;

/** A recalibration’s temporary spill file the storage refuses (SpillingRowStore): 503, 507. */
const SPILL_FAILURE_DOC =
  'likewise for the recalibration’s temporary spill file (its rows past RECALIBRATION_MEMORY_BYTES, under TMPDIR), named by its absolute path, or one another process shortened (503); nothing was published';

/** The 503 of a write of the active-version record whose lock another writer keeps. */
const ACTIVE_RECORD_BUSY_DOC = `ACTIVE_RECORD_BUSY: the active-version record’s lock (.active-version.lock) stayed held by another live writer for ${ACTIVE_RECORD_LOCK_WAIT_MS / 1000} s; nothing was written. Retry-After (seconds) says when a retry may find it free`;

/**
 * Admin routes, behind `Authorization: Bearer <ADMIN_TOKEN>` and a rate limit: recalibration
 * (JSON, NDJSON, CSV or float32 uploads, streamed), jobs, activation (rollback) and deletion of versions.
 */
export async function adminRoutes(parent: AppInstance): Promise<void> {
  // One scope for every admin route: the rate limit's counter is shared by all of them. The token
  // check comes with each route's `access: 'admin'` (route-access.ts).
  await parent.register(async (app: AppInstance) => adminScope(app));
}

async function adminScope(app: AppInstance): Promise<void> {
  const { registry, config, recalibration: service } = app.deps;
  const jobs = service.jobs;
  await app.register(rateLimit, {
    // Per client address and minute, for the whole server; failed authentications apart.
    ...adminRateLimit(app.deps),
  });
  const tags = ['admin'];

  // The recalibrate route reads NDJSON, CSV and float32 bodies as streams; its own scope keeps these
  // parsers away from every other route (which stay JSON only).
  await app.register(async (scope: AppInstance) => {
    const passStream = (
      _request: unknown,
      payload: Readable,
      done: (err: Error | null, body?: unknown) => void,
    ) => done(null, payload);
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
          streamedBody: true,
          jsonBudget: recalibrationBudget(registry, config),
        },
        bodyLimit: config.BODY_LIMIT_BYTES,
        schema: {
          tags,
          summary: 'Recalibrate BatchNorm statistics on unlabeled rows and publish a new version',
          description: [
            'Recomputes every BatchNorm running mean and variance on the posted rows (AdaBN), re-folds, and publishes the result as the next version, atomically; with `activate` (default) it is served at once.',
            `Bodies: \`application/json\` (this schema), \`${NDJSON}\` (one JSON array of features per line), \`${CSV}\` (UTF-8, a header row naming the columns, as \`npm run recalibrate -- --data file.csv\` reads it: the model's recorded feature names' columns, in any order, when the header has them all, else every column but \`label_column\`) or \`${FLOAT32}\` (little-endian float32 rows); for these three, options in the query string. They are read as a stream, and a bad line is named in the problem (\`line 7, column "b": "x" is not a finite number\`).`,
            `More than RECALIBRATION_ASYNC_ROWS rows (default ${config.RECALIBRATION_ASYNC_ROWS}), or \`Prefer: respond-async\`, answer 202 with \`Location: /v1/jobs/{id}\` once the upload is received.`,
            'A second recalibration of the same model while one runs answers 409 with `job_id` naming the running job (`GET /v1/jobs/{id}`), or, when `npm run recalibrate` is running it, with `holder` naming that process (`cli`, `host`, `pid`, `since`) and no job id: the CLI keeps its job to itself.',
            CONTENT_ENCODING_DOC,
          ].join('\n\n'),
          consumes: ['application/json', NDJSON, CSV, FLOAT32],
          params: nameParams,
          querystring: recalibrateQuerySchema,
          body: withRowFields(recalibrateBodySchema, ['instances']),
          response: {
            201: recalibrationOutcomeSchema.describe('Published (Location: the new version)'),
            202: acceptedSchema.describe('Running as a job (Location: /v1/jobs/{id})'),
            ...adminErrors,
            413: problemSchema.describe(
              `Body larger than BODY_LIMIT_BYTES, or a streamed upload larger than RECALIBRATION_BODY_LIMIT_BYTES (BODY_TOO_LARGE); more rows than MAX_RECALIBRATION_SAMPLES, or a JSON body with more arrays and objects than that many samples of the model can be written with, refused before it is parsed (TOO_MANY_SAMPLES)`,
            ),
            503: problemSchema.describe(
              `${activeVersionErrorResponses[503].description}. Or ACTIVE_RECORD_BUSY, with Retry-After, when the served version must first be pinned in the model's active-version record (there is none, or it names another version; it is written before publishing) and the record’s lock stays held for ${ACTIVE_RECORD_LOCK_WAIT_MS / 1000} s: no version was published. Once the version is published, a busy lock only leaves it not activated (201, not_activated.code ACTIVE_RECORD_BUSY). Or ${STORAGE_UNAVAILABLE_DOC}; ${SPILL_FAILURE_DOC}`,
            ),
            507: problemSchema.describe(`${adminErrors[507].description}; ${SPILL_FAILURE_DOC}`),
          },
        },
      },
      recalibrate,
    );
  });

  app.get(
    '/v1/jobs/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'State, progress (rows processed) and result or error of a job',
        params: z.object({
          id: z.string().uuid().meta({ description: 'Job id from a 202 or 409 response' }),
        }),
        response: { 200: jobSchema, ...adminErrors },
      },
    },
    async (request) => {
      const job = await jobs.get(request.params.id);
      if (!job) throw new NormserveError('JOB_NOT_FOUND', `no job ${request.params.id}`);
      return job as z.input<typeof jobSchema>;
    },
  );

  app.post(
    `/v1/models/:name/versions/${beforeVerb('version')}::activate`,
    {
      config: { access: 'admin' },
      // JSON is the only body it reads, so an untyped one is that (json-body.ts); :recalibrate
      // reads four types, and an untyped upload stays a 415 that says the type is missing.
      onRequest: untypedBodyAsJson,
      schema: {
        tags,
        summary: 'Serve this version (rollback or roll forward); persisted in the repository',
        params: versionParams,
        body: activateBodySchema,
        response: {
          200: activationSchema,
          ...adminErrors,
          503: problemSchema.describe(`${ACTIVE_RECORD_BUSY_DOC}. Or ${STORAGE_UNAVAILABLE_DOC}`),
        },
      },
    },
    async (request, reply) => {
      const { name, version } = request.params;
      request.modelName = name;
      // What this activation did, even if another one has taken effect since.
      const { previous, storageWarning } = await registry.activate(
        name,
        version,
        request.body?.note,
      );
      reply.header('X-Model-Version', String(version));
      return {
        model: name,
        active_version: version,
        previous_version: previous,
        // Active, though not synced: what happened, not a failure (a retry changes nothing).
        ...(storageWarning ? { warning: storageWarningOf(storageWarning) } : {}),
      };
    },
  );

  app.delete(
    `/v1/models/:name/versions/${beforeVerb('version')}`,
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Delete a version that is not the active one (409 otherwise)',
        params: versionParams,
        response: {
          200: z
            .object({
              deleted_version: z.number().int(),
              model: z.unknown(),
              warning: storageWarningSchema,
            })
            .meta({
              examples: [
                {
                  deleted_version: 2,
                  model: {
                    name: 'digits',
                    active_version: 1,
                    state: 'AVAILABLE',
                    versions: [{ version: 1, state: 'AVAILABLE', active: true }],
                  },
                },
              ],
            }),
          ...adminErrors,
          503: problemSchema.describe(`${ACTIVE_RECORD_BUSY_DOC}. Or ${STORAGE_UNAVAILABLE_DOC}`),
        },
      },
    },
    async (request) => {
      request.modelName = request.params.name;
      const { snapshot, storageWarning } = await registry.deleteVersion(
        request.params.name,
        request.params.version,
      );
      return {
        deleted_version: request.params.version,
        model: listModel(snapshot),
        ...(storageWarning ? { warning: storageWarningOf(storageWarning) } : {}),
      };
    },
  );
}
