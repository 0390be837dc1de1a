/**
 * A body sent without a Content-Type is read as JSON on the routes whose clients post it that way:
 * tritonclient.http sends JSON infer requests with only Host and Content-Length, and KServe's
 * InferenceRESTClient posts `httpx.post(content=orjson.dumps(...))` to v1 predict and v2 infer.
 * Same parser, limits and error positions as application/json; an explicit other type is still a
 * 415. Checked through inject and through a real socket, where Node's own parser reads the headers.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsRow, expectProblem, inferBody } from './http-helpers.js';

const PREDICT = '/v1/models/digits:predict';
const INFER = '/v2/models/digits/infer';
const predictJson = JSON.stringify({ instances: [digitsRow()] });
const inferJson = JSON.stringify(inferBody([digitsRow()]));

let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'], env: { BODY_LIMIT_BYTES: '2048' } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as { port: number }).port;
});
afterAll(async () => {
  await t.close();
});

/** A string payload: inject adds Content-Length only, no Content-Type. */
const untyped = (url: string, payload: string, headers: Record<string, string> = {}) =>
  t.app.inject({ method: 'POST', url, payload, headers });

/** POST over a socket with exactly these headers (Content-Length, or chunked when `chunked`). */
function rawPost(
  path: string,
  payload: string,
  { chunked = false, headers = {} }: { chunked?: boolean; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        port,
        host: '127.0.0.1',
        method: 'POST',
        path,
        headers: chunked
          ? { ...headers, 'transfer-encoding': 'chunked' }
          : { ...headers, 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('a JSON body without a Content-Type', () => {
  it('is read as JSON by :predict and /infer (inject)', async () => {
    const predict = await untyped(PREDICT, predictJson);
    expect(predict.statusCode).toBe(200);
    expect(predict.json().predictions).toHaveLength(1);
    const infer = await untyped(INFER, inferJson);
    expect(infer.statusCode).toBe(200);
    expect(infer.json().outputs.length).toBeGreaterThan(0);
    // As application/json reads it.
    const typed = await untyped(PREDICT, predictJson, { 'content-type': 'application/json' });
    expect(predict.json().predictions).toEqual(typed.json().predictions);
  });

  it('is read as JSON by :predict and /infer over a socket, with Content-Length or chunked', async () => {
    for (const chunked of [false, true]) {
      const predict = await rawPost(PREDICT, predictJson, { chunked });
      expect(predict.status).toBe(200);
      expect(predict.body.predictions).toHaveLength(1);
      const infer = await rawPost(INFER, inferJson, { chunked });
      expect(infer.status).toBe(200);
      expect(infer.body.model_name).toBe('digits');
    }
  });

  it('with an empty Content-Type header is read as JSON too', async () => {
    const res = await rawPost(PREDICT, predictJson, { headers: { 'content-type': '' } });
    expect(res.status).toBe(200);
  });

  it('that is not JSON is the 400 INVALID_JSON application/json gets, with the same position', async () => {
    const bad = '{"instances": [[1, 2, x]]}';
    for (const url of [PREDICT, INFER]) {
      const typed = expectProblem(
        await untyped(url, bad, { 'content-type': 'application/json' }),
        400,
        'INVALID_JSON',
      );
      const res = await rawPost(url, bad);
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('INVALID_JSON');
      expect(res.body.detail).toBe(typed.detail);
      expect(res.body.position).toEqual({ line: 1, column: 23, offset: 22 });
    }
  });

  it('is held to BODY_LIMIT_BYTES', async () => {
    const big = JSON.stringify({ instances: Array.from({ length: 20 }, () => digitsRow()) });
    expect(big.length).toBeGreaterThan(2048);
    for (const url of [PREDICT, INFER]) {
      const res = await rawPost(url, big);
      expect(res.status).toBe(413);
      expect(res.body.code).toBe('BODY_TOO_LARGE');
    }
  });

  it('an explicit text/plain is still a 415 on both routes', async () => {
    for (const url of [PREDICT, INFER]) {
      const res = await untyped(url, predictJson, { 'content-type': 'text/plain' });
      const body = expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect(body.detail).toMatch(
        /^unsupported Content-Type; this route accepts application\/json/,
      );
      const socket = await rawPost(url, predictJson, { headers: { 'content-type': 'text/plain' } });
      expect(socket.status).toBe(415);
      expect(socket.body.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    }
  });

  it('an empty chunked body is said to be empty, naming no Content-Type the client did not send', async () => {
    for (const url of [PREDICT, INFER]) {
      const res = await rawPost(url, '', { chunked: true });
      expect(res.status).toBe(400);
      expect(res.body.code).toBe('INVALID_JSON');
      expect(res.body.detail).toBe(
        'the body is empty (sent with no Content-Type, it is read as JSON); expected a JSON object',
      );
    }
    // Sent with the type, the message names it.
    const typed = await rawPost(PREDICT, '', {
      chunked: true,
      headers: { 'content-type': 'application/json' },
    });
    expect(typed.body.detail).toBe('the body is empty but Content-Type is application/json');
    // curl's `-d ''` sends the form type, read as JSON: named as sent (h253).
    const form = await rawPost(PREDICT, '', {
      chunked: true,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(form.body.detail).toBe(
      'the body is empty but Content-Type is application/x-www-form-urlencoded (read as JSON); expected a JSON object',
    );
  });

  it('a POST with no body and no type stays bodiless: the schema names what is missing', async () => {
    const res = await t.app.inject({ method: 'POST', url: PREDICT });
    expectProblem(res, 400, 'INVALID_INPUT');
  });

  it(':activate, which reads JSON only, reads it as JSON', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:activate',
      headers: ADMIN,
      payload: JSON.stringify({ note: 'untyped' }),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ model: 'digits', active_version: 1 });
  });

  it(':recalibrate, which reads four types, answers a 415 that says the type is missing', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:recalibrate',
      headers: ADMIN,
      payload: JSON.stringify({ instances: [digitsRow()] }),
    });
    expect(expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE').detail).toBe(
      'no Content-Type; this route accepts application/json, application/x-www-form-urlencoded (read as JSON), application/x-ndjson, text/csv, application/octet-stream',
    );
  });
});
