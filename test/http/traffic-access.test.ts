/**
 * What the prediction traffic shows takes its token: with API_TOKEN set, the live drift report
 * and the BatchNorm pictures of the last rows served answer 401 without
 * `Authorization: Bearer <API_TOKEN>` or with the admin token, and 200 with it; the OpenAPI
 * document says so. The model status (TF Serving's GetModelStatus, polled by probes) stays public
 * and then leaves out the automatic recalibration's state, which the drift report holds. Without
 * API_TOKEN they stay open, and /metrics stays public either way.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsRow, expectProblem } from './http-helpers.js';

const API_TOKEN = 'traffic-access-api-token-0123456789';
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

const DRIFT = '/v1/models/digits/drift';
const PICTURES = '/v1/models/digits/drift/layers';
const STATUS = '/v1/models/digits';

/** 8 rows of prediction traffic, with the API token when one is given. */
async function traffic(t: TestApp, token?: string): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: '/v1/models/digits:predict',
    headers: token === undefined ? {} : bearer(token),
    payload: { instances: Array.from({ length: 8 }, (_, i) => digitsRow(i)) },
  });
  expect(res.statusCode, res.body).toBe(200);
}

const get = (t: TestApp, url: string, token?: string) =>
  t.app.inject({ method: 'GET', url, headers: token === undefined ? {} : bearer(token) });

function expectUnauthorized(res: LightMyRequestResponse, url: string): void {
  expectProblem(res, 401, 'UNAUTHORIZED', url);
  expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
}

/** What each answer holds once the traffic was seen (the proof that it was answered in full). */
const SEEN: Record<string, (body: Record<string, unknown>) => void> = {
  [DRIFT]: (body) => expect(body).toMatchObject({ model: 'digits', active: { rows: 8 } }),
  [PICTURES]: (body) => expect(body).toMatchObject({ model: 'digits', version: 1, rows: 8 }),
  [STATUS]: (body) =>
    expect(body).toMatchObject({ auto_recalibration: { mode: 'recommend', in_progress: false } }),
};

describe('API_TOKEN set', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ env: { API_TOKEN, AUTO_RECALIBRATE: 'recommend' } });
    await traffic(t, API_TOKEN);
  });
  afterAll(async () => {
    await t?.close();
  });

  for (const url of [DRIFT, PICTURES]) {
    it(`GET ${url}: 401 without a token, with another or the admin token; 200 with the API token`, async () => {
      const none = await get(t, url);
      expectUnauthorized(none, url);
      expect(none.json<{ detail: string }>().detail).toBe(
        'traffic routes need "Authorization: Bearer <token>" with the server\'s API_TOKEN',
      );
      expectUnauthorized(await get(t, url, 'another-token-0123456789'), url);
      expectUnauthorized(await get(t, url, ADMIN_TOKEN), url);
      const ok = await get(t, url, API_TOKEN);
      expect(ok.statusCode, ok.body).toBe(200);
      SEEN[url]!(ok.json());
    });
  }

  it('the OpenAPI document asks for the API token on each, and documents the 401', async () => {
    const doc = (await get(t, '/openapi.json')).json<{
      paths: Record<string, { get: { security?: unknown[]; responses: Record<string, unknown> } }>;
    }>();
    for (const path of ['/v1/models/{name}/drift', '/v1/models/{name}/drift/layers']) {
      const op = doc.paths[path]!.get;
      expect(op.security, path).toEqual([{ apiToken: [] }, {}]);
      expect(Object.keys(op.responses), path).toContain('401');
    }
    expect(doc.paths['/v1/models/{name}']!.get.security).toBeUndefined();
  });

  it('the model status stays public and leaves the traffic out, which the drift report holds', async () => {
    for (const token of [undefined, API_TOKEN]) {
      const status = await get(t, STATUS, token);
      expect(status.statusCode, status.body).toBe(200);
      expect(status.json()).toHaveProperty('model_version_status');
      expect(status.json()).not.toHaveProperty('auto_recalibration');
    }
    const drift = await get(t, DRIFT, API_TOKEN);
    expect(drift.json()).toMatchObject({ auto_recalibration: { mode: 'recommend' } });
  });

  it('the rest stays public: /metrics, the dashboard page, the model list and versions', async () => {
    for (const url of ['/metrics', '/dashboard', '/v1/models', '/v1/models/digits/versions']) {
      const res = await get(t, url);
      expect(res.statusCode, url).toBe(200);
    }
  });
});

describe('API_TOKEN set, AUTO_RECALIBRATE off', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ env: { API_TOKEN } });
    await traffic(t, API_TOKEN);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the drift routes need the token; the status, holding nothing from the traffic, does not', async () => {
    for (const url of [DRIFT, PICTURES]) {
      expectUnauthorized(await get(t, url), url);
      expect((await get(t, url, API_TOKEN)).statusCode, url).toBe(200);
    }
    const status = await get(t, STATUS);
    expect(status.statusCode, status.body).toBe(200);
    expect(status.json()).not.toHaveProperty('auto_recalibration');
  });
});

describe('API_TOKEN unset', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ env: { AUTO_RECALIBRATE: 'recommend' } });
    await traffic(t);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('the same routes answer without a token, as before', async () => {
    for (const url of [DRIFT, PICTURES, STATUS]) {
      const res = await get(t, url);
      expect(res.statusCode, res.body).toBe(200);
      SEEN[url]!(res.json());
    }
  });
});
