import type { RouteOptions } from 'fastify';
import { openApiPath } from './openapi.js';
import type { ServingProtocol } from './problem-media-type.js';

interface Pattern {
  /** The route's URL as registered (`/v1/models/:name(^[^:]+)::predict`). */
  url: string;
  /** Its OpenAPI form (`/v1/models/{name}:predict`), which the router's params fill. */
  label: string;
  /**
   * The paths of its shape, whatever the router would make of their parameters: a parameter is
   * any text without `/` or `:` (`:` starts TF Serving's verb), so a name the router refuses as
   * too long (its maxParamLength) still has the shape of the route it was meant for.
   */
  shape: RegExp;
  protocol: ServingProtocol | undefined;
}

const shapeOf = (label: string): RegExp =>
  new RegExp(
    `^${label
      .split(/(\{\w+\}|\*$)/)
      .map((part, i) =>
        i % 2 === 0 ? part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : part === '*' ? '.*' : '[^/:]+',
      )
      .join('')}$`,
  );

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
    const label = openApiPath(route.url);
    const pattern = {
      url: route.url,
      label,
      shape: shapeOf(label),
      protocol: route.config?.protocol,
    };
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

  /**
   * Whether the routes with the shape of `path` (any method) speak a serving protocol, for the
   * media type of a request no route took (problem-media-type.ts): true when one of them does
   * (`PUT /v1/models/digits/versions/1`, whose GET is TF Serving's), false when they are all
   * normserve's own, undefined when no route has that shape.
   */
  speaksProtocolAt(path: string): boolean | undefined {
    let shaped = false;
    for (const patterns of this.byMethod.values())
      for (const { shape, protocol } of patterns) {
        if (!shape.test(path)) continue;
        if (protocol !== undefined) return true;
        shaped = true;
      }
    return shaped ? false : undefined;
  }
}
