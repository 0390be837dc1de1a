/**
 * The error responses every admin route documents (routes/admin.ts and routes/recalibrate.ts,
 * registered in one admin scope), and the words of a repository write its storage refused.
 */
import { storageErrnos } from '../../service/index.js';
import { errorResponses, problemSchema } from './common.js';

/** The OpenAPI tags of the admin routes. */
export const ADMIN_TAGS = ['admin'];

/** A failed write of the repository with one of `code`'s errnos (storage-failure.ts), in words. */
function storageFailureDoc(code: 'STORAGE_FULL' | 'STORAGE_UNAVAILABLE'): string {
  const errnos = storageErrnos(code);
  const list =
    errnos.length > 1 ? `${errnos.slice(0, -1).join(', ')} or ${errnos.at(-1)}` : errnos.join('');
  return `a write of the model repository failed with ${list} before it took effect (the detail names the operation, the errno and the path relative to the repository)`;
}

/**
 * What any admin request may meet with WORKERS > 1: the admin rate limit is counted for the whole
 * server by the cluster primary (cli/cluster-rate-limit.ts), before the route does anything.
 */
const PRIMARY_TIMEOUT_DOC =
  'CLUSTER_PRIMARY_TIMEOUT (WORKERS > 1): the cluster primary, which counts the admin rate limit for every worker, did not answer in time; nothing was done; Retry-After: 1';

export const adminErrors = {
  ...errorResponses,
  401: problemSchema.describe('Missing or wrong bearer token (WWW-Authenticate: Bearer)'),
  409: problemSchema.describe(
    'A recalibration of this model is running (job_id names its job; holder, instead, the recalibrate CLI process running it), or the version is active',
  ),
  429: problemSchema.describe(
    'Admin rate limit exceeded (ADMIN_RATE_LIMIT_PER_MINUTE, or ADMIN_AUTH_FAILURES_PER_MINUTE for requests without the valid token)',
  ),
  503: problemSchema.describe(PRIMARY_TIMEOUT_DOC),
  507: problemSchema.describe(
    `STORAGE_FULL: ${storageFailureDoc('STORAGE_FULL')}; nothing was changed`,
  ),
};

/** The 503 of a write of the repository that its storage refused (storage-failure.ts). */
export const STORAGE_UNAVAILABLE_DOC = `STORAGE_UNAVAILABLE: ${storageFailureDoc('STORAGE_UNAVAILABLE')}; nothing was changed. A failure after the rename that made the change is no error: the success answer carries \`warning\``;

/** An admin route's 503: its own causes, then the cluster primary's (adminErrors). */
export const admin503 = (causes: string) =>
  problemSchema.describe(`${causes}. Or ${PRIMARY_TIMEOUT_DOC}`);
