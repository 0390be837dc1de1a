/**
 * An unknown query parameter is the same 400 on every route. Issue: `GET …/drift/layers?x=1`
 * answered 200 while :predict answered 400 "unknown query parameter": only the routes that read a
 * query had a (strict) query schema; every other one ignored any parameter (strict-query.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { expectInvalid } from './http-helpers.js';

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
});
afterAll(async () => {
  await t.close();
});

const ROUTES_WITHOUT_QUERY = [
  '/v1/models/digits/drift/layers',
  '/v1/models/digits/drift',
  '/v1/models/digits',
  '/v1/models/digits/versions/1',
  '/v1/models/digits/metadata',
  '/v2',
  '/v2/models/digits',
  '/',
];

/**
 * Probes and the OpenAPI document take any query (config.anyQuery): a load balancer or client
 * may add a cache-busting parameter, and a probe's 400 would take the instance out of rotation.
 */
const ANY_QUERY = [
  '/healthz',
  '/readyz',
  '/v2/health/live',
  '/v2/health/ready',
  '/v2/models/digits/ready',
  '/v2/models/digits/versions/1/ready',
  '/openapi.json',
  // Documented (text/html, text/plain), and opened or scraped with parameters of their own.
  '/dashboard',
  '/metrics',
];

/** A document path with the test's model and version in place of its parameters. */
const fill = (path: string) => path.replace('{name}', 'digits').replace('{version}', '1');

describe('a query parameter a route does not read', () => {
  it.each(ROUTES_WITHOUT_QUERY)('GET %s?x=1: 400 naming query.x, as :predict does', async (url) => {
    const plain = await t.app.inject({ url, headers: ADMIN });
    expect(plain.statusCode, plain.body).toBe(200);
    expectInvalid(await t.app.inject({ url: `${url}?x=1`, headers: ADMIN }), [
      { path: 'query.x', message: 'unknown query parameter' },
    ]);
  });

  it('is documented: every route of the OpenAPI document that declares its responses lists a 400', async () => {
    const document = (await t.app.inject({ url: '/openapi.json' })).json<{
      paths: Record<string, Record<string, { responses: Record<string, { description: string }> }>>;
    }>();
    const without = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.entries(operations)
        .filter(([, op]) => op.responses['200']?.description !== 'Default Response')
        .filter(([, op]) => op.responses['400'] === undefined)
        .filter(() => !ANY_QUERY.includes(fill(path)))
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    expect(without).toEqual([]);
  });

  it.each(ANY_QUERY)('GET %s?x=1&_=1700000000: 200, as without the query', async (url) => {
    const res = await t.app.inject({ url: `${url}?x=1&_=1700000000` });
    expect(res.statusCode, res.body).toBe(200);
  });

  it('pages and files for browsers and scrapers (no JSON responses) take any', async () => {
    for (const url of ['/docs?v=1', '/dashboard?utm_source=x', '/metrics?target=a'])
      expect((await t.app.inject({ url })).statusCode, url).toBe(200);
  });
});
