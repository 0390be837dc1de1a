import type { RouteOptions } from 'fastify';
import { z } from 'zod';
import { problemSchema } from './schemas/common.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route answers whatever query it is sent (health probes and /openapi.json, which a
     * load balancer or a client may call with a cache-busting parameter: a probe's 400 would take
     * the instance out of rotation; the dashboard's page and /metrics, below).
     */
    anyQuery?: boolean;
  }
}

/** The query of a route that reads none: any parameter is unknown. */
const NO_QUERY = z.strictObject({});
const UNKNOWN_QUERY_400 = problemSchema.describe(
  'INVALID_INPUT: a query parameter; this route reads none',
);

/**
 * An onRoute hook giving every JSON API route (one that declares its responses) that declares no
 * query schema an empty strict one, so that `?x=1` is the same 400 "unknown query parameter" on
 * every such route, as on those that read a query (strict schemas: :predict, :recalibrate, the
 * export): a misspelt parameter (`?fuse=false` on the wrong route) is named rather than silently
 * ignored, and a route that documented no 400 now documents this one. Left as they are: the pages
 * and files for browsers and scrapers (the dashboard and the interactive docs, opened from links
 * that may carry tracking or cache-busting parameters; /metrics, which Prometheus may scrape with
 * the `params` of its job), which declare no responses or are marked `config.anyQuery` as the
 * routes whose answers are documented are (the health probes, /openapi.json, /dashboard,
 * /metrics).
 */
export function strictQuery(route: RouteOptions): void {
  const schema = route.schema as
    | { querystring?: unknown; response?: Record<string, unknown> }
    | undefined;
  const response = schema?.response;
  if (response === undefined || schema?.querystring !== undefined || route.config?.anyQuery) return;
  route.schema = {
    ...route.schema,
    querystring: NO_QUERY,
    ...(response[400] === undefined ? { response: { ...response, 400: UNKNOWN_QUERY_400 } } : {}),
  };
}
