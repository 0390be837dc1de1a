import type { RouteOptions } from 'fastify';
import { requireBearer } from './auth.js';
import { preParsingOf } from './route-pre-parsing.js';
import { problemSchema } from './schemas/common.js';

/**
 * Who may call a route, declared by every route in its options (`config: { access }`):
 *  - `public`: anyone (health, models, metadata, metrics, documents);
 *  - `prediction`: predictions, behind `Authorization: Bearer <API_TOKEN>` when API_TOKEN is set;
 *  - `download`: the ONNX export, which hands out the weights: the same token as predictions;
 *  - `traffic`: what the prediction traffic shows (live drift, the BatchNorm pictures of the last
 *    rows served, the automatic recalibration's sample and shadow runs): the prediction traffic's
 *    token, since it is drawn from the rows that token guards (`/metrics` stays public, as
 *    Prometheus scrapes it: its drift gauges are scores and counts);
 *  - `admin`: behind `Authorization: Bearer <ADMIN_TOKEN>` always.
 */
export type RouteAccess = 'public' | 'prediction' | 'download' | 'traffic' | 'admin';

/** The accesses API_TOKEN guards when it is set. */
type ApiTokenAccess = Exclude<RouteAccess, 'public' | 'admin'>;
const guardedByApiToken = (access: RouteAccess): access is ApiTokenAccess =>
  access !== 'public' && access !== 'admin';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

const API_TOKEN_401 = problemSchema.describe(
  'UNAUTHORIZED: API_TOKEN is set and the request has no `Authorization: Bearer <API_TOKEN>`, or another token (WWW-Authenticate: Bearer)',
);

/** OpenAPI security requirements per access (`{}`: the token is optional, as API_TOKEN is). */
const SECURITY: Record<RouteAccess, Record<string, string[]>[] | undefined> = {
  public: undefined,
  prediction: [{ apiToken: [] }, {}],
  download: [{ apiToken: [] }, {}],
  traffic: [{ apiToken: [] }, {}],
  admin: [{ adminToken: [] }],
};

/**
 * Whether what the prediction traffic shows is behind the API token (the `traffic` access): a
 * public route that could also show it (the model status) leaves it out when this is true.
 */
export const trafficIsGuarded = (apiToken: string | undefined): apiToken is string =>
  apiToken !== undefined;

/**
 * An onRoute hook giving each route the guard its declared access asks for, and the matching
 * OpenAPI security requirement: one place decides which token a route demands, from what the
 * route says about itself, never from its URL. A route that declares nothing stops the start
 * (the hidden routes of the interactive docs are public).
 */
export function routeGuards(tokens: { admin: string; api: string | undefined }) {
  const adminGuard = requireBearer(tokens.admin, 'admin');
  // Each guard's 401 names its realm.
  const apiGuards: Record<ApiTokenAccess, ReturnType<typeof requireBearer>> | undefined =
    !trafficIsGuarded(tokens.api)
      ? undefined
      : {
          prediction: requireBearer(tokens.api, 'prediction'),
          download: requireBearer(tokens.api, 'model download'),
          traffic: requireBearer(tokens.api, 'traffic'),
        };
  return (route: RouteOptions): void => {
    const schema = route.schema as { hide?: boolean; security?: unknown } | undefined;
    const access = route.config?.access ?? (schema?.hide ? 'public' : undefined);
    if (access === undefined) {
      throw new Error(
        `route ${String(route.method)} ${route.url} declares no access (config.access: public, prediction, download, traffic or admin)`,
      );
    }
    const security = SECURITY[access];
    if (security && route.schema) {
      // The 401 its token brings, documented wherever the token applies (the admin routes list
      // theirs with their other admin errors).
      const response = route.schema.response as Record<string, unknown> | undefined;
      route.schema = {
        ...route.schema,
        security,
        ...(access !== 'admin' && response
          ? { response: { ...response, 401: API_TOKEN_401 } }
          : {}),
      };
    }
    if (access === 'admin') {
      // preParsing: after the admin rate limit counted the request (onRequest), before any body
      // is read or validated, so a missing token is a 401, not a 400.
      route.preParsing = [adminGuard, ...preParsingOf(route)];
    } else if (guardedByApiToken(access) && apiGuards) {
      // onRequest: before the body is read or validated.
      route.onRequest = [apiGuards[access], ...(route.onRequest ? [route.onRequest].flat() : [])];
    }
  };
}
