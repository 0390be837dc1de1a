import type { preParsingHookHandler, RouteOptions } from 'fastify';

/**
 * The route's preParsing hooks as a list: an onRoute hook places its own among them (the access
 * guard first, the body's decoding and the 100 Continue last), whatever the route declared (none,
 * one function or a list).
 */
export const preParsingOf = (route: RouteOptions): preParsingHookHandler[] =>
  route.preParsing ? [route.preParsing].flat() : [];
