import rateLimit from '@fastify/rate-limit';
import { z } from 'zod';
import { NormserveError } from '../../errors/index.js';
import { ACTIVE_RECORD_LOCK_WAIT_MS, jobIdSchema, storageWarningOf } from '../../service/index.js';
import type { AppInstance } from '../app-types.js';
import { attributeModel } from '../attribute-model.js';
import { untypedBodyAsJson } from '../json-body.js';
import { modelVersionHeaderDoc, setModelVersion } from '../model-version-header.js';
import { beforeVerb } from '../not-found.js';
import { adminRateLimit } from '../rate-limit.js';
import {
  activateBodySchema,
  activationSchema,
  deletionSchema,
  jobSchema,
} from '../schemas/admin.js';
import {
  ADMIN_TAGS,
  admin503,
  adminErrors,
  STORAGE_UNAVAILABLE_DOC,
} from '../schemas/admin-errors.js';
import { versionParams } from '../schemas/common.js';
import { listModel } from '../views/model-listing.js';
import { recalibrateRoutes } from './recalibrate.js';

/** The 503 of a write of the active-version record whose lock another writer keeps. */
const ACTIVE_RECORD_BUSY_DOC = `ACTIVE_RECORD_BUSY: the active-version record’s lock (.active-version.lock) stayed held by another live writer for ${ACTIVE_RECORD_LOCK_WAIT_MS / 1000} s; nothing was written. Retry-After (seconds) says when a retry may find it free`;

/**
 * Admin routes, behind `Authorization: Bearer <ADMIN_TOKEN>` and a rate limit: recalibration
 * (routes/recalibrate.ts), jobs, activation (rollback) and deletion of versions.
 */
export async function adminRoutes(parent: AppInstance): Promise<void> {
  // One scope for every admin route: the rate limit's counter is shared by all of them. The token
  // check comes with each route's `access: 'admin'` (route-access.ts).
  await parent.register(async (app: AppInstance) => adminScope(app));
}

async function adminScope(app: AppInstance): Promise<void> {
  const { registry, recalibration } = app.deps;
  const jobs = recalibration.jobs;
  await app.register(rateLimit, {
    // Per client address and minute, for the whole server; failed authentications apart.
    ...adminRateLimit(app.deps),
  });
  const tags = ADMIN_TAGS;

  // In this scope: the recalibrate route counts against the same rate limit.
  await recalibrateRoutes(app);

  app.get(
    '/v1/jobs/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'State, progress (rows processed) and result or error of a job',
        params: z.object({
          id: jobIdSchema.meta({ description: 'Job id from a 202 or 409 response' }),
        }),
        response: { 200: jobSchema, ...adminErrors },
      },
    },
    async (request) => {
      const job = await jobs.get(request.params.id);
      if (!job) throw new NormserveError('JOB_NOT_FOUND', `no job ${request.params.id}`);
      return job;
    },
  );

  app.post(
    `/v1/models/:name/versions/${beforeVerb('version')}::activate`,
    {
      config: { access: 'admin' },
      // JSON is the only body it reads, so an untyped one is that (json-body.ts); :recalibrate
      // reads several types, and an untyped upload stays a 415 that says the type is missing.
      onRequest: [untypedBodyAsJson, attributeModel(registry)],
      schema: {
        tags,
        summary: 'Serve this version (rollback or roll forward); persisted in the repository',
        params: versionParams,
        body: activateBodySchema,
        response: {
          200: activationSchema.meta({
            description: 'Active (X-Model-Version: the version now served)',
            headers: modelVersionHeaderDoc('The version now active'),
          }),
          ...adminErrors,
          503: admin503(`${ACTIVE_RECORD_BUSY_DOC}. Or ${STORAGE_UNAVAILABLE_DOC}`),
        },
      },
    },
    async (request, reply) => {
      const { name, version } = request.params;
      // What this activation did, even if another one has taken effect since.
      const note = request.body?.note;
      const { previous, storageWarning } = await registry.activate(name, version, note);
      // Who switched versions: this line carries the request's id and trace, the registry's
      // 'active version changed' (any process, any cause) does not.
      request.log.info(
        { model: name, version, previous, ...(note !== undefined ? { note } : {}) },
        'version activated',
      );
      request.servedVersion = version;
      setModelVersion(reply, version);
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
      onRequest: attributeModel(registry),
      schema: {
        tags,
        summary: 'Delete a version that is not the active one (409 otherwise)',
        params: versionParams,
        response: {
          200: deletionSchema,
          ...adminErrors,
          503: admin503(`${ACTIVE_RECORD_BUSY_DOC}. Or ${STORAGE_UNAVAILABLE_DOC}`),
        },
      },
    },
    async (request) => {
      const { snapshot, storageWarning } = await registry.deleteVersion(
        request.params.name,
        request.params.version,
      );
      request.log.info(
        { model: request.params.name, version: request.params.version },
        'version deleted',
      );
      return {
        deleted_version: request.params.version,
        model: listModel(snapshot),
        ...(storageWarning ? { warning: storageWarningOf(storageWarning) } : {}),
      };
    },
  );
}
