/**
 * The media type of errors (src/http/problem-media-type.ts): the TF Serving and Open Inference
 * Protocol routes, and requests no route matched under /v1/models and /v2, answer their problem
 * documents as exactly `application/json` (KServe's InferenceRESTClient reads the message only
 * when the header is that whole string), unless Accept names application/problem+json; every
 * other route answers `application/problem+json; charset=utf-8`. The body is the same.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsRow, expectProblem, inferBody } from './http-helpers.js';

const JSON_TYPE = 'application/json';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
});
afterAll(async () => {
  await t.close();
});

const withoutId = (res: LightMyRequestResponse) => {
  const { request_id: _id, ...rest } = res.json<Record<string, unknown>>();
  return rest;
};

/** Protocol requests that fail, one per kind of route. */
const protocolFailures: [string, () => Promise<LightMyRequestResponse>][] = [
  [
    'TF Serving predict, a bad value',
    () =>
      t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: [['x']] },
      }),
  ],
  ['TF Serving status, an unknown model', () => t.app.inject({ url: '/v1/models/nosuch' })],
  [
    'TF Serving metadata, an unknown version',
    () => t.app.inject({ url: '/v1/models/digits/versions/9/metadata' }),
  ],
  [
    'OIP infer, no Content-Type (as KServe posts), an unknown model',
    () =>
      t.app.inject({
        method: 'POST',
        url: '/v2/models/nosuch/infer',
        payload: JSON.stringify(inferBody([digitsRow()])),
      }),
  ],
  [
    'OIP infer, the binary extension, a short body',
    () =>
      t.app.inject({
        method: 'POST',
        url: '/v2/models/digits/infer',
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': '1000',
        },
        payload: Buffer.from('{}'),
      }),
  ],
  ['OIP model metadata, an invalid name', () => t.app.inject({ url: '/v2/models/_x' })],
  ['OIP model readiness, an unknown model', () => t.app.inject({ url: '/v2/models/nosuch/ready' })],
];

describe('a protocol route’s error', () => {
  it.each(protocolFailures)(
    '%s: exactly application/json, a problem with `error`',
    async (_, send) => {
      const res = await send();
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(400);
      expect(res.statusCode).toBeLessThan(500);
      expect(res.headers['content-type']).toBe(JSON_TYPE);
      expect(res.headers.vary).toMatch(/\bAccept\b/);
      const body = res.json<{ error: string; detail: string; status: number; code: string }>();
      expect(body.error.length).toBeGreaterThan(0);
      expect(body.detail).toBe(body.error);
      expect(body.status).toBe(res.statusCode);
      expect(typeof body.code).toBe('string');
    },
  );

  it('is problem+json when Accept names application/problem+json, with the same body', async () => {
    const url = '/v1/models/digits/versions/9/metadata';
    const plain = await t.app.inject({ url });
    for (const accept of [
      'application/problem+json',
      'application/json, application/problem+json;q=0.9',
      'APPLICATION/PROBLEM+JSON; q=1',
    ]) {
      const res = await t.app.inject({ url, headers: { accept } });
      expect(res.statusCode, accept).toBe(404);
      expect(res.headers['content-type'], accept).toBe(PROBLEM_TYPE);
      expect(res.headers.vary).toMatch(/\bAccept\b/);
      expect(withoutId(res)).toEqual(withoutId(plain));
    }
  });

  it('stays application/json when Accept does not name problem+json, or refuses it (q=0)', async () => {
    for (const accept of ['application/json', '*/*', 'application/problem+json;q=0', 'text/html']) {
      const res = await t.app.inject({ url: '/v2/models/nosuch', headers: { accept } });
      expect(res.statusCode, accept).toBe(404);
      expect(res.headers['content-type'], accept).toBe(JSON_TYPE);
    }
  });

  it('on a binary infer request asking for binary outputs is still JSON', async () => {
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'input',
            shape: [1, 64],
            datatype: 'FP32',
            parameters: { binary_data_size: 256 },
          },
        ],
        outputs: [{ name: 'nosuch', parameters: { binary_data: true } }],
      }),
    );
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
      payload: Buffer.concat([header, Buffer.from(Float32Array.from(digitsRow()).buffer)]),
    });
    expectProblem(res, 400, 'INVALID_INPUT');
    expect(res.headers['content-type']).toBe(JSON_TYPE);
  });
});

describe('normserve’s own routes', () => {
  it.each([
    ['an admin route without its token', 'POST', '/v1/models/digits:recalibrate', 401],
    ['a job that does not exist', 'GET', '/v1/jobs/nosuch', 401],
    ['the drift of an unknown model', 'GET', '/v1/models/nosuch/drift', 404],
    ['the version list of an unknown model', 'GET', '/v1/models/nosuch/versions', 404],
    ['an unknown path outside the protocols', 'GET', '/nosuch', 404],
    ['an unknown path under /v1/jobs', 'GET', '/v1/jobs/a/b', 404],
  ] as const)('%s: application/problem+json; charset=utf-8', async (_, method, url, status) => {
    const res = await t.app.inject({ method, url });
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(res.headers.vary).toBeUndefined();
  });

  it.each([
    ['a method the route does not answer (405)', 'GET', '/v1/models/digits:recalibrate', 405],
    ['a method the model list does not answer (405)', 'PUT', '/v1/models', 405],
    // The router refuses a parameter beyond its maxParamLength (400): no route took it, but it
    // has the shape of one.
    ['a name beyond the router’s length', 'POST', `/v1/models/${'a'.repeat(300)}:recalibrate`, 400],
    [
      'an ONNX download of a name beyond it',
      'GET',
      `/v1/models/${'a'.repeat(300)}/versions/1/model.onnx`,
      400,
    ],
  ] as const)('%s, though under /v1/models: problem+json', async (_, method, url, status) => {
    const res = await t.app.inject({ method, url });
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(res.headers.vary).toBeUndefined();
  });
});

describe('a request no route matched', () => {
  it('under /v2 or /v1/models is application/json: 404, 405 (with Allow), a router error', async () => {
    const notFound = await t.app.inject({ url: '/v2/foo' });
    expectProblem(notFound, 404, 'NOT_FOUND', '/v2/foo');
    expect(notFound.headers['content-type']).toBe(JSON_TYPE);

    const tfNotFound = await t.app.inject({ url: '/v1/models/digits/nothing' });
    expect(tfNotFound.statusCode).toBe(404);
    expect(tfNotFound.headers['content-type']).toBe(JSON_TYPE);

    const notAllowed = await t.app.inject({ url: '/v2/models/digits/infer' });
    expectProblem(notAllowed, 405, 'METHOD_NOT_ALLOWED');
    expect(notAllowed.headers.allow).toBe('POST');
    expect(notAllowed.headers['content-type']).toBe(JSON_TYPE);

    // A path served by TF Serving's GET and normserve's own DELETE speaks the protocol.
    const mixed = await t.app.inject({ method: 'PUT', url: '/v1/models/digits/versions/1' });
    expect(mixed.statusCode).toBe(405);
    expect(mixed.headers['content-type']).toBe(JSON_TYPE);

    const longName = await t.app.inject({ url: `/v2/models/${'a'.repeat(300)}/ready` });
    expect(longName.statusCode).toBe(400);
    expect(longName.headers['content-type']).toBe(JSON_TYPE);

    const head = await t.app.inject({ method: 'HEAD', url: '/v1/models/digits:predict' });
    expect(head.statusCode).toBe(405);
    expect(head.headers.allow).toBe('POST');
    expect(head.headers['content-type']).toBe(JSON_TYPE);
    expect(head.body).toBe('');

    // A router error (malformed percent-encoding) never reached a route: judged by its path.
    const badUrl = await t.app.inject({ url: '/v2/models/%ZZ' });
    expect(badUrl.statusCode).toBe(400);
    expect(badUrl.headers['content-type']).toBe(JSON_TYPE);
    expect(badUrl.json()).toMatchObject({ code: 'INVALID_INPUT', status: 400 });

    const asked = await t.app.inject({
      url: '/v2/foo',
      headers: { accept: 'application/problem+json' },
    });
    expect(asked.headers['content-type']).toBe(PROBLEM_TYPE);
  });

  it('a HEAD of a protocol route answers its GET’s error type without a body', async () => {
    const res = await t.app.inject({ method: 'HEAD', url: '/v1/models/nosuch' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toBe(JSON_TYPE);
    expect(res.body).toBe('');
  });
});

describe('the OpenAPI document', () => {
  interface Doc {
    paths: Record<string, Record<string, { responses: Record<string, { content?: object }> }>>;
  }
  const types = (doc: Doc, path: string, method: string, status: string) =>
    Object.keys(doc.paths[path]![method]!.responses[status]!.content ?? {});

  it('lists both media types for a protocol route’s problems, problem+json for the others', async () => {
    const doc = (await t.app.inject({ url: '/openapi.json' })).json<Doc>();
    expect(types(doc, '/v1/models/{name}:predict', 'post', '400')).toEqual([
      'application/json',
      'application/problem+json',
    ]);
    expect(types(doc, '/v2/models/{name}/infer', 'post', '503')).toEqual([
      'application/json',
      'application/problem+json',
    ]);
    // A prediction is not a problem: JSON, or float32 rows (Accept: application/octet-stream).
    expect(types(doc, '/v1/models/{name}:predict', 'post', '200')).toEqual([
      'application/json',
      'application/octet-stream',
    ]);
    // The readiness answer's 503 is a readiness document, not a problem.
    expect(types(doc, '/v2/models/{name}/ready', 'get', '503')).toEqual(['application/json']);
    expect(types(doc, '/v1/models/{name}:recalibrate', 'post', '400')).toEqual([
      'application/problem+json',
    ]);
    expect(types(doc, '/v1/models/{name}/versions', 'get', '404')).toEqual([
      'application/problem+json',
    ]);
    expect(JSON.stringify(doc)).not.toContain('x-normserve-protocol');
  });
});
