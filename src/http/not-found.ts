import type { FastifyReply, FastifyRequest } from 'fastify';
import { NormserveError } from '../errors/index.js';
import type { AppInstance } from './app-types.js';
import { noRoute } from './no-route.js';
import { sendProblem } from './problem.js';
import type { RoutePatterns } from './route-patterns.js';

/** The methods a 405's `Allow` header may list (HEAD is registered with every GET route). */
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/**
 * A model name or version as the LAST segment of a route's path, or before TF Serving's verb
 * (`${beforeVerb('version')}::predict`): anything but `:`, which starts the verb
 * (`/v1/models/digits:predict`, `/versions/2:activate`). Without it, `GET /v1/models/digits:predict`
 * would match `GET /v1/models/:name` with the name "digits:predict" and answer a name validation
 * error instead of 405. It admits any version text so that the params schema (`versionParam`),
 * not the router, judges it: `versions/abc:predict` is the same 400 as `versions/abc/metadata`,
 * not a 404 "no route".
 */
export const beforeVerb = (param: 'name' | 'version'): string => `:${param}(^[^:]+)`;

/**
 * The not-found handler: a path some route serves with other methods answers 405 with `Allow`
 * (RFC 9110 §15.5.6), any other path 404; both as problem documents. The router itself says which
 * methods match (Fastify's findRoute), so every route, present and future, is covered. A route
 * that matches the request's own method and still calls not-found (the static files of /docs
 * for a file that is not there) has nothing at that path: 404, not a 405 whose Allow header lists
 * the very method refused. A 405's log line and metrics name the pattern of the route found at its
 * path (`patterns`: `/v1/models/{name}:predict` for `GET /v1/models/digits:predict`), a 404's none.
 */
export function notFoundHandler(app: AppInstance, patterns: RoutePatterns) {
  return (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = request.url.split('?')[0]!;
    let found: { method: string; params: Record<string, string | undefined> } | undefined;
    const allowed = METHODS.filter((method) => {
      const route = app.findRoute({ method, url: path });
      if (route !== null) found ??= { method, params: route.params };
      return route !== null;
    });
    if (allowed.length > 0 && !allowed.includes(request.method as (typeof METHODS)[number])) {
      if (found) request.allowedRoute = patterns.matched(found.method, path, found.params);
      void reply.header('Allow', allowed.join(', '));
      return sendProblem(
        reply,
        request,
        new NormserveError(
          'METHOD_NOT_ALLOWED',
          `${request.method} is not allowed on ${path}; it answers ${allowed.join(', ')}`,
        ),
      );
    }
    return sendProblem(reply, request, noRoute(request));
  };
}
