/**
 * Which token each route demands, for every route of the OpenAPI document: the table below names
 * each one's access (a new route fails here until it is classified), the document's security
 * requirement says the same, and the app enforces it with API_TOKEN set — a prediction route
 * needs the API token (and only it), an admin route the admin token (and only it), a public route
 * none (the ONNX download, which hands out the weights, and the drift routes, drawn from the
 * prediction traffic, take the API token too). Access is declared by each route (config.access),
 * never derived from its URL: a route that declares none stops the app from starting.
 */
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RouteAccess, routeGuards } from '../../src/http/route-access.js';
import { ADMIN_TOKEN, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsRow } from './http-helpers.js';

const API_TOKEN = 'route-access-api-token-0123456789';
const JOB = '00000000-0000-4000-8000-000000000000';

/** Every operation of the document: "METHOD path" → who may call it. */
const EXPECTED: Record<string, RouteAccess> = {
  'GET /': 'public',
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'GET /metrics': 'public',
  'GET /openapi.json': 'public',
  'GET /v1/models': 'public',
  'GET /v1/models/{name}': 'public',
  'GET /v1/models/{name}/versions': 'public',
  'GET /v1/models/{name}/versions/{version}': 'public',
  'GET /v1/models/{name}/metadata': 'public',
  'GET /v1/models/{name}/versions/{version}/metadata': 'public',
  'GET /v1/models/{name}/versions/{version}/model.onnx': 'download',
  'GET /v1/models/{name}/drift': 'traffic',
  'GET /v1/models/{name}/drift/layers': 'traffic',
  'GET /dashboard': 'public',
  'POST /v1/models/{name}:predict': 'prediction',
  'POST /v1/models/{name}/versions/{version}:predict': 'prediction',
  'GET /v2': 'public',
  'GET /v2/health/live': 'public',
  'GET /v2/health/ready': 'public',
  'GET /v2/models/{name}': 'public',
  'GET /v2/models/{name}/versions/{version}': 'public',
  'GET /v2/models/{name}/ready': 'public',
  'GET /v2/models/{name}/versions/{version}/ready': 'public',
  'POST /v2/models/{name}/infer': 'prediction',
  'POST /v2/models/{name}/versions/{version}/infer': 'prediction',
  'POST /v1/models/{name}:recalibrate': 'admin',
  'GET /v1/jobs/{id}': 'admin',
  'POST /v1/models/{name}/versions/{version}:activate': 'admin',
  'DELETE /v1/models/{name}/versions/{version}': 'admin',
};

interface Operation {
  security?: Record<string, unknown>[];
  responses?: Record<string, unknown>;
}

let t: TestApp;
let operations: { key: string; method: string; path: string; op: Operation }[];

beforeAll(async () => {
  t = await makeTestApp({ env: { API_TOKEN, ADMIN_RATE_LIMIT_PER_MINUTE: '100000' } });
  const doc = (await t.app.inject({ url: '/openapi.json' })).json<{
    paths: Record<string, Record<string, Operation>>;
  }>();
  operations = Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => ({
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      op,
    })),
  );
});
afterAll(async () => {
  await t.close();
});

/** A valid request for an operation, so that only the token decides between 401 and success. */
function requestFor(method: string, path: string) {
  const url = path.replace('{name}', 'digits').replace('{version}', '1').replace('{id}', JOB);
  const rows = [digitsRow(1), digitsRow(2)];
  let payload: Record<string, unknown> | undefined;
  if (url.endsWith(':predict')) payload = { instances: rows };
  else if (url.endsWith('/infer'))
    payload = { inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', data: rows.flat() }] };
  else if (url.endsWith(':recalibrate')) payload = { instances: rows, activate: false };
  else if (url.endsWith(':activate')) payload = {};
  return { method: method as 'GET', url, ...(payload === undefined ? {} : { payload }) };
}

describe('the token each route demands', () => {
  it('the table names every operation of the OpenAPI document, and only those', () => {
    expect(operations.map((o) => o.key).sort()).toEqual(Object.keys(EXPECTED).sort());
  });

  it("each operation's security requirement says what the table says", () => {
    for (const { key, op } of operations) {
      const schemes = (op.security ?? []).flatMap((s) => Object.keys(s));
      const documented = schemes.includes('adminToken')
        ? 'admin'
        : schemes.includes('apiToken')
          ? 'api token'
          : 'public';
      const expected = EXPECTED[key];
      expect(documented, key).toBe(
        expected === 'public' || expected === 'admin' ? expected : 'api token',
      );
      // The API token is optional (API_TOKEN may be unset): an empty requirement says so; its
      // 401 is documented.
      if (documented === 'api token') {
        expect(op.security, key).toContainEqual({});
        expect(Object.keys(op.responses ?? {}), key).toContain('401');
      }
    }
  });

  it('the app enforces it: without a token, with the API token, with the admin token', async () => {
    for (const { key, method, path } of operations) {
      const request = requestFor(method, path);
      const status = async (token?: string) =>
        (
          await t.app.inject({
            ...request,
            headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
          })
        ).statusCode;
      const access = EXPECTED[key];
      const [none, api, admin] = [
        await status(),
        await status(API_TOKEN),
        await status(ADMIN_TOKEN),
      ];
      const context = `${key}: none ${none}, api ${api}, admin ${admin}`;
      if (access === 'public') {
        expect(
          [none, api, admin].some((s) => s === 401),
          context,
        ).toBe(false);
      } else if (access !== 'admin') {
        expect([none, api, admin], context).toEqual([401, 200, 401]);
      } else {
        expect(none, context).toBe(401);
        expect(api, context).toBe(401);
        expect(admin, context).not.toBe(401);
        expect(admin, context).toBeLessThan(500);
      }
    }
  });

  it('a route that declares no access stops the start', async () => {
    const app = Fastify();
    app.addHook('onRoute', routeGuards({ admin: ADMIN_TOKEN, api: undefined }));
    expect(() => app.get('/new-route', async () => 'ok')).toThrow(/declares no access/);
    await app.close();
  });
});
