import type { RouteOptions } from 'fastify';
import { openApiPath } from './openapi.js';

interface Pattern {
  /** The route's URL as registered (`/v1/models/:name(^[^:]+)::predict`). */
  url: string;
  /** Its OpenAPI form (`/v1/models/{name}:predict`), which the router's params fill. */
  label: string;
}

/**
 * The URL patterns of an app's routes, by method (`record` is an onRoute hook), and which of them
 * the router matched at a path. Fastify's findRoute says that a route matches, and with which
 * params, but not its pattern: the pattern is the one of that method whose parameters, filled
 * with those params, give the path back. For the 405 of a path served with other methods, whose
 * log line and metrics are labelled with that route's pattern (request-log.ts), never with the
 * raw URL; a path the router decoded (percent-encoding in a parameter) fills no pattern exactly
 * and stays unlabelled.
 */
export class RoutePatterns {
  private readonly byMethod = new Map<string, Pattern[]>();

  readonly record = (route: RouteOptions): void => {
    const pattern = { url: route.url, label: openApiPath(route.url) };
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      let patterns = this.byMethod.get(method);
      if (patterns === undefined) {
        patterns = [];
        this.byMethod.set(method, patterns);
      }
      patterns.push(pattern);
    }
  };

  /** The URL of the `method` route the router matched at `path` with `params`, if one is found. */
  matched(
    method: string,
    path: string,
    params: Readonly<Record<string, string | undefined>>,
  ): string | undefined {
    for (const { url, label } of this.byMethod.get(method) ?? []) {
      let filled = label.replace(/\{(\w+)\}/g, (_match, name: string) => params[name] ?? '\0');
      if (filled.endsWith('*')) filled = filled.slice(0, -1) + (params['*'] ?? '\0');
      if (filled === path) return url;
    }
    return undefined;
  }
}
