/**
 * Admin authentication and rate limiting, and API_TOKEN on the prediction routes and the ONNX
 * download: every admin route answers 401 (problem+json, WWW-Authenticate: Bearer) without the
 * right bearer token and does nothing; tokens never reach the logs; ADMIN_RATE_LIMIT_PER_MINUTE
 * caps admin requests.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FixedWindowCounter } from '../../src/http/fixed-window-counter.js';
import {
  ADMIN,
  ADMIN_TOKEN,
  expectProblem,
  float32Body,
  type LoggedApp,
  makeLoggedApp,
  ndjsonBody,
} from '../helpers/admin.js';
import { digitsTestRows } from '../helpers/digits.js';

const rows = digitsTestRows().x.slice(0, 8);
const JOB = '00000000-0000-4000-8000-000000000000';
const WRONG_TOKEN = 'wrong-admin-token-fedcba9876543210';
const BASIC = `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`;

type Inject = InjectOptions;

/** One valid request per admin route (each would succeed or get a domain error with the token). */
const adminRequests: { route: string; request: () => Inject }[] = [
  {
    route: 'POST /v1/models/{name}:recalibrate (JSON)',
    request: () => ({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      payload: { instances: rows },
    }),
  },
  {
    route: 'POST /v1/models/{name}:recalibrate (NDJSON)',
    request: () => ({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: { 'content-type': 'application/x-ndjson' },
      payload: ndjsonBody(rows),
    }),
  },
  {
    route: 'POST /v1/models/{name}:recalibrate (float32)',
    request: () => ({
      method: 'POST',
      url: '/v1/models/digits:recalibrate?mode=running&batch_size=4',
      headers: { 'content-type': 'application/octet-stream' },
      payload: float32Body(rows),
    }),
  },
  { route: 'GET /v1/jobs/{id}', request: () => ({ method: 'GET', url: `/v1/jobs/${JOB}` }) },
  {
    route: 'POST /v1/models/{name}/versions/{v}:activate',
    request: () => ({
      method: 'POST',
      url: '/v1/models/digits/versions/1:activate',
      payload: { note: 'x' },
    }),
  },
  {
    route: 'DELETE /v1/models/{name}/versions/{v}',
    request: () => ({ method: 'DELETE', url: '/v1/models/digits/versions/1' }),
  },
];

const credentials: { what: string; headers: Record<string, string> }[] = [
  { what: 'no Authorization header', headers: {} },
  { what: 'a wrong bearer token', headers: { authorization: `Bearer ${WRONG_TOKEN}` } },
  { what: 'the token with a suffix', headers: { authorization: `Bearer ${ADMIN_TOKEN}x` } },
  { what: 'a token prefix', headers: { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` } },
  { what: 'the right token as Basic credentials', headers: { authorization: BASIC } },
  { what: 'the bare token without a scheme', headers: { authorization: ADMIN_TOKEN } },
  { what: 'an empty bearer token', headers: { authorization: 'Bearer ' } },
];

function withHeaders(request: Inject, headers: Record<string, string>): Inject {
  return { ...request, headers: { ...(request.headers ?? {}), ...headers } } as Inject;
}

function expectUnauthorized(res: LightMyRequestResponse): void {
  expectProblem(res, 401, 'UNAUTHORIZED');
  expect(res.headers['www-authenticate']).toMatch(/^Bearer\b/);
}

describe('admin routes need Authorization: Bearer <ADMIN_TOKEN>', () => {
  let t: LoggedApp;
  beforeAll(async () => {
    // Many admin requests here; the rate limit has its own tests below.
    t = await makeLoggedApp({
      env: { ADMIN_RATE_LIMIT_PER_MINUTE: '100000', ADMIN_AUTH_FAILURES_PER_MINUTE: '100000' },
    });
  });
  afterAll(async () => {
    await t.close();
  });

  for (const { route, request } of adminRequests) {
    for (const { what, headers } of credentials) {
      it(`${route} with ${what} → 401 problem, nothing done`, async () => {
        const res = await t.app.inject(withHeaders(request(), headers));
        expectUnauthorized(res);
        expect(res.json<{ detail: string }>().detail).not.toContain(ADMIN_TOKEN);
      });
    }
  }

  it('left the repository as it was: no version 2, version 1 still active and present', async () => {
    expect(existsSync(join(t.repository, 'digits', '2'))).toBe(false);
    expect(existsSync(join(t.repository, 'digits', '1', 'model.safetensors'))).toBe(true);
    const status = await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions' });
    expect(status.json()).toMatchObject({ active_version: 1, versions: [{ version: 1 }] });
  });

  it('answers 401 before looking at the request: an invalid body or job id without a token is 401, not 400', async () => {
    const bad: Inject[] = [
      { method: 'POST', url: '/v1/models/digits:recalibrate', payload: { bogus: true } },
      {
        method: 'POST',
        url: '/v1/models/digits:recalibrate?mode=sideways',
        payload: { instances: rows },
      },
      { method: 'GET', url: '/v1/jobs/not-a-uuid' },
      { method: 'POST', url: '/v1/models/digits/versions/1:activate', payload: { nope: 1 } },
      // A malformed version is a validation error too: 401 first, as for any other.
      { method: 'POST', url: '/v1/models/digits/versions/abc:activate', payload: {} },
      { method: 'POST', url: '/v1/models/digits/versions/0:activate', payload: {} },
      { method: 'DELETE', url: '/v1/models/digits/versions/abc' },
    ];
    for (const request of bad) {
      const res = await t.app.inject(request);
      expect(res.statusCode, `${request.method} ${request.url}: ${res.body}`).toBe(401);
      expectUnauthorized(res);
    }
  });

  it('accepts the right token (scheme case-insensitive, as RFC 7235 says)', async () => {
    const job = await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN });
    expectProblem(job, 404, 'JOB_NOT_FOUND');
    const lower = await t.app.inject({
      method: 'GET',
      url: `/v1/jobs/${JOB}`,
      headers: { authorization: `bearer ${ADMIN_TOKEN}` },
    });
    expectProblem(lower, 404, 'JOB_NOT_FOUND');
    const recal = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: ADMIN,
      payload: { instances: rows, activate: false },
    });
    expect(recal.statusCode, recal.body).toBe(201);
    expect(recal.json()).toMatchObject({ version: 2, activated: false });
  });

  it('never writes a token (right, wrong or Basic) into the logs', async () => {
    // Every kind of call once more: authorized successes and failures, unauthorized ones.
    await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:activate',
      headers: ADMIN,
    });
    await t.app.inject({ method: 'DELETE', url: '/v1/models/digits/versions/1', headers: ADMIN });
    await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: ADMIN,
      payload: { instances: [rows[0]] },
    });
    await t.app.inject({
      method: 'GET',
      url: `/v1/jobs/${JOB}`,
      headers: { authorization: `Bearer ${WRONG_TOKEN}` },
    });
    await t.app.inject({
      method: 'GET',
      url: `/v1/jobs/${JOB}`,
      headers: { authorization: BASIC },
    });

    const text = t.logs.join('\n');
    const lines = t.logs.map((l) => JSON.parse(l) as { msg?: string; status?: number });
    // The logs are real: one line per request, with the statuses seen above.
    const statuses = new Set(lines.filter((l) => l.msg === 'request').map((l) => l.status));
    for (const s of [201, 200, 401, 404, 409, 400]) expect(statuses, `status ${s}`).toContain(s);
    const published = lines.find((l) => l.msg === 'recalibration published') as
      | { job?: string }
      | undefined;
    expect(published?.job).toMatch(/^[0-9a-f-]{36}$/);
    // The registry's line for the same version leads to the same job.
    const registryLine = lines.find((l) => l.msg === 'version published') as
      | { job?: string }
      | undefined;
    expect(registryLine?.job).toBe(published?.job);

    expect(text).not.toContain(ADMIN_TOKEN);
    expect(text).not.toContain(ADMIN_TOKEN.slice(0, 16));
    expect(text).not.toContain(WRONG_TOKEN);
    expect(text).not.toContain(BASIC.slice('Basic '.length));
  });
});

describe('admin rate limit (ADMIN_RATE_LIMIT_PER_MINUTE=3)', () => {
  const env = { ADMIN_RATE_LIMIT_PER_MINUTE: '3', ADMIN_AUTH_FAILURES_PER_MINUTE: '2' };

  it('the 4th request to an admin route within a minute → 429 problem whose text and Retry-After give the real time left', async () => {
    let now = 1_000_000;
    const t = await makeLoggedApp({
      env,
      rateLimitCounter: new FixedWindowCounter({ now: () => now }),
    });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN });
        expect(res.statusCode).toBe(404);
        expect(res.headers['x-ratelimit-remaining']).toBe(String(2 - i));
        now += 10_000; // the window started with the first request
      }
      // 30 s into the window: 30 s are left, not the window's 60 s.
      const limited = await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN });
      const body = expectProblem(limited, 429, 'RATE_LIMITED', `/v1/jobs/${JOB}`);
      expect(body.detail).toBe(
        'at most 3 admin requests per minute from one client address; retry in 30 s',
      );
      expect(limited.headers['retry-after']).toBe('30');
      now += 29_500;
      const later = await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN });
      expect(later.json<{ detail: string }>().detail).toMatch(/; retry in 1 s$/);
      // Predictions are not limited.
      for (let i = 0; i < 5; i++) {
        const p = await t.app.inject({
          method: 'POST',
          url: '/v1/models/digits:predict',
          payload: { instances: rows.slice(0, 1) },
        });
        expect(p.statusCode).toBe(200);
      }
      // The window ends: admin requests pass again.
      now += 500;
      const fresh = await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN });
      expect(fresh.statusCode).toBe(404);
      expect(t.logs.join('\n')).not.toContain(ADMIN_TOKEN);
    } finally {
      await t.close();
    }
  });

  it('counts failed authentications apart: a neighbour with a wrong token is limited and the admin is not', async () => {
    const t = await makeLoggedApp({ env });
    try {
      // Same client address (a neighbour behind the same proxy): failures use their own budget.
      const statuses: number[] = [];
      for (const headers of [
        {},
        { authorization: `Bearer ${WRONG_TOKEN}` },
        { authorization: BASIC },
      ])
        statuses.push(
          (await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers })).statusCode,
        );
      expect(statuses).toEqual([401, 401, 429]);
      const refused = await t.app.inject({
        method: 'GET',
        url: `/v1/jobs/${JOB}`,
        headers: { authorization: `Bearer ${WRONG_TOKEN}` },
      });
      const body = expectProblem(refused, 429, 'RATE_LIMITED');
      expect(body.detail).toMatch(
        /^at most 2 failed admin authentications per minute from one client address; retry in (60|59) s \(requests with the valid token are counted apart\)$/,
      );
      // The admin, from the same address, still has all 3 of its requests.
      for (let i = 0; i < 3; i++) {
        const res = await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN });
        expect(res.statusCode, res.body).toBe(404);
        expect(res.headers['x-ratelimit-remaining']).toBe(String(2 - i));
      }
      // And its own limit is its own: the 4th is refused, with the admin message.
      const fourth = await t.app.inject({ method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN });
      expect(expectProblem(fourth, 429, 'RATE_LIMITED').detail).toMatch(
        /admin requests per minute/,
      );
    } finally {
      await t.close();
    }
  });

  it('counts admin requests across admin routes: the 4th admin request of any kind → 429', async () => {
    const t = await makeLoggedApp({ env });
    try {
      const sequence: Inject[] = [
        { method: 'GET', url: `/v1/jobs/${JOB}`, headers: ADMIN },
        { method: 'POST', url: '/v1/models/digits/versions/1:activate', headers: ADMIN },
        { method: 'DELETE', url: '/v1/models/digits/versions/9', headers: ADMIN },
      ];
      const statuses: number[] = [];
      for (const request of sequence) statuses.push((await t.app.inject(request)).statusCode);
      expect(statuses).toEqual([404, 200, 404]);
      const fourth = await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:recalibrate',
        headers: ADMIN,
        payload: { instances: rows },
      });
      expectProblem(fourth, 429, 'RATE_LIMITED');
      expect(existsSync(join(t.repository, 'digits', '2'))).toBe(false);
    } finally {
      await t.close();
    }
  });
});

describe('API_TOKEN guards predict, infer and the ONNX download; metadata stays open', () => {
  const API_TOKEN = 'api-token-for-predictions-0123';
  let t: LoggedApp;
  beforeAll(async () => {
    t = await makeLoggedApp({ env: { API_TOKEN } });
  });
  afterAll(async () => {
    await t.close();
  });

  const inferBody = {
    inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', data: rows.slice(0, 2).flat() }],
  };
  const guarded: Inject[] = [
    { method: 'POST', url: '/v1/models/digits:predict', payload: { instances: rows.slice(0, 2) } },
    {
      method: 'POST',
      url: '/v1/models/digits/versions/1:predict',
      payload: { instances: rows.slice(0, 2) },
    },
    { method: 'POST', url: '/v2/models/digits/infer', payload: inferBody },
    { method: 'POST', url: '/v2/models/digits/versions/1/infer', payload: inferBody },
    // The ONNX download hands out the weights: guarded like the predictions.
    { method: 'GET', url: '/v1/models/digits/versions/1/model.onnx' },
  ];

  for (const request of guarded) {
    it(`${request.method} ${request.url}: 401 without or with a wrong token, 200 with it`, async () => {
      expectUnauthorized(await t.app.inject(request));
      expectUnauthorized(
        await t.app.inject(withHeaders(request, { authorization: `Bearer ${WRONG_TOKEN}` })),
      );
      expectUnauthorized(
        await t.app.inject(withHeaders(request, { authorization: `Bearer ${ADMIN_TOKEN}` })),
      );
      const ok = await t.app.inject(withHeaders(request, { authorization: `Bearer ${API_TOKEN}` }));
      expect(ok.statusCode, ok.body).toBe(200);
      expect(ok.headers['x-model-version']).toBe('1');
    });
  }

  it('answers 401 before validating: a malformed predict body without a token is 401', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: { bogus: true },
    });
    expectUnauthorized(res);
  });

  it('metadata, status, readiness and the model list need no token', async () => {
    for (const url of [
      '/v1/models',
      '/v1/models/digits',
      '/v1/models/digits/metadata',
      '/v1/models/digits/versions/1/metadata',
      '/v2',
      '/v2/models/digits',
      '/v2/models/digits/ready',
      '/v2/health/ready',
    ]) {
      const res = await t.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
    }
  });

  it('the API token does not open the admin routes, and no token reaches the logs', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: `/v1/jobs/${JOB}`,
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expectUnauthorized(res);
    const text = t.logs.join('\n');
    expect(t.logs.length).toBeGreaterThan(10);
    expect(text).not.toContain(API_TOKEN);
    expect(text).not.toContain(ADMIN_TOKEN);
    expect(text).not.toContain(WRONG_TOKEN);
  });
});

describe('FixedWindowCounter (the admin rate limit’s windows)', () => {
  it('counts per key in fixed windows, with the real time left, and keeps at most maxKeys keys', () => {
    let now = 0;
    const counter = new FixedWindowCounter({ maxKeys: 2, now: () => now });
    expect(counter.hit('a', 60_000)).toEqual({ count: 1, resetInMs: 60_000 });
    now = 15_000;
    expect(counter.hit('a', 60_000)).toEqual({ count: 2, resetInMs: 45_000 });
    expect(counter.hit('b', 60_000)).toEqual({ count: 1, resetInMs: 60_000 });
    now = 60_000; // a's window is over: a new one starts
    expect(counter.hit('a', 60_000)).toEqual({ count: 1, resetInMs: 60_000 });
    // A third key: the window that started first (b's) is forgotten.
    expect(counter.hit('c', 60_000)).toEqual({ count: 1, resetInMs: 60_000 });
    expect(counter.hit('a', 60_000).count).toBe(2);
    expect(counter.hit('b', 60_000).count).toBe(1);
  });
});
