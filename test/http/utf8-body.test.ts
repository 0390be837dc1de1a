/**
 * Bytes that are no UTF-8 in a JSON body are refused, as gRPC and the CSV and NDJSON uploads refuse
 * them. Issue: the JSON parser read bodies as strings, so `{"id":"\xc3\x28",…}` was answered 200
 * with the id echoed as "�(" — a different id than the client sent.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsRow, expectProblem, inferBody } from './http-helpers.js';

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
});
afterAll(async () => {
  await t.close();
});

const NOT_UTF8 = 'the request body is not valid UTF-8';
/** `{"id":"<bad>",…}`: a valid infer request whose id holds `bad`, a byte sequence. */
const inferWithId = (bad: Buffer): Buffer => {
  const text = JSON.stringify(inferBody([digitsRow()], { id: '@@' }));
  const [before, after] = text.split('@@') as [string, string];
  return Buffer.concat([Buffer.from(before), bad, Buffer.from(after)]);
};
const post = (url: string, payload: Buffer, headers: Record<string, string> = {}) =>
  t.app.inject({
    method: 'POST',
    url,
    payload,
    headers: { 'content-type': 'application/json', ...headers },
  });

describe('a JSON body that is no UTF-8', () => {
  it.each([
    ['a lone continuation byte pair (\\xc3\\x28)', Buffer.from([0xc3, 0x28])],
    ['a byte never in UTF-8 (\\xff)', Buffer.from([0xff])],
    ['a surrogate encoded (\\xed\\xa0\\x80)', Buffer.from([0xed, 0xa0, 0x80])],
    ['a sequence cut short (\\xe2\\x82)', Buffer.from([0xe2, 0x82])],
  ])('v2 infer with %s in its id: 400 INVALID_INPUT, nothing echoed', async (_, bad) => {
    const res = await post('/v2/models/digits/infer', inferWithId(bad));
    const problem = expectProblem(res, 400, 'INVALID_INPUT');
    expect(problem.detail).toBe(NOT_UTF8);
  });

  it('the same id in valid UTF-8 is read and echoed whole', async () => {
    const res = await post('/v2/models/digits/infer', inferWithId(Buffer.from('é(€😀')));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<{ id: string }>().id).toBe('é(€😀');
  });

  it('TF Serving predict, and a gzip-encoded body: the same refusal', async () => {
    const bad = Buffer.concat([
      Buffer.from('{"signature_name":"'),
      Buffer.from([0xff]),
      Buffer.from(`","instances":[${JSON.stringify(digitsRow())}]}`),
    ]);
    for (const res of [
      await post('/v1/models/digits:predict', bad),
      await post('/v1/models/digits:predict', gzipSync(bad), { 'content-encoding': 'gzip' }),
    ]) {
      expect(expectProblem(res, 400, 'INVALID_INPUT').detail).toBe(NOT_UTF8);
    }
  });

  it('the JSON header of a binary infer request: the same refusal', async () => {
    const header = inferWithId(Buffer.from([0xc3, 0x28]));
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: header,
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
    });
    expect(expectProblem(res, 400, 'INVALID_INPUT').detail).toBe(
      `the JSON header is not valid UTF-8 (the JSON header is the body's first ${header.length} bytes, as Inference-Header-Content-Length says: check that it is the header's length in bytes)`,
    );
  });

  it('a header length that cuts a character, or reaches into the tensor bytes, is named', async () => {
    const header = Buffer.from(JSON.stringify(inferBody([digitsRow()], { id: 'é' })));
    const tensor = Buffer.from(new Float32Array(64).buffer); // zeros: valid UTF-8
    const send = (length: number) =>
      t.app.inject({
        method: 'POST',
        url: '/v2/models/digits/infer',
        payload: Buffer.concat([header, tensor]),
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(length),
        },
      });
    // Inside the two bytes of "é" (the id comes first in the header).
    const cut = header.indexOf(Buffer.from('é')) + 1;
    expect(expectProblem(await send(cut), 400, 'INVALID_INPUT').detail).toMatch(
      new RegExp(
        `^the JSON header is not valid UTF-8 \\(the JSON header is the body's first ${cut} bytes, as Inference-Header-Content-Length says`,
      ),
    );
    // Short of the header's end (a "}" inside the id string does not end it).
    const braces = Buffer.from(JSON.stringify(inferBody([digitsRow()], { id: '}]}' })));
    const short = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: Buffer.concat([braces, tensor]),
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(braces.length - 10),
      },
    });
    expect(expectProblem(short, 400, 'INVALID_JSON').detail).toMatch(
      /\(the JSON header is the body's first \d+ bytes, as Inference-Header-Content-Length says/,
    );
    // Past the header's end: the first tensor bytes read as JSON.
    const detail = expectProblem(await send(header.length + 4), 400, 'INVALID_JSON').detail;
    expect(detail).toMatch(
      new RegExp(
        `\\(the JSON header is the body's first ${header.length + 4} bytes, as Inference-Header-Content-Length says: check that it is the header's length in bytes\\)$`,
      ),
    );
  });

  it('a syntax error after multi-byte characters keeps its line and column (in characters)', async () => {
    const res = await post('/v2/models/digits/infer', Buffer.from('{"id":"é€",\n  "inputs": [}'));
    const problem = expectProblem(res, 400, 'INVALID_JSON');
    expect(problem.position).toEqual({ line: 2, column: 14, offset: 25 });
  });
});

describe('a JSON body with a charset parameter', () => {
  const body = Buffer.from(JSON.stringify(inferBody([digitsRow()], { id: 'é' })));
  it.each([
    'application/json; charset=utf-8',
    'application/json;charset="UTF-8"',
    'application/json; charset=us-ascii',
  ])('%s: read', async (type) => {
    const res = await post('/v2/models/digits/infer', body, { 'content-type': type });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<{ id: string }>().id).toBe('é');
  });

  it.each([
    ['application/json; charset=utf-16', 'application/json', 'utf-16'],
    ['Application/JSON; charset="ISO-8859-1"', 'application/json', 'ISO-8859-1'],
    [
      'application/x-www-form-urlencoded; charset=latin1',
      'application/x-www-form-urlencoded',
      'latin1',
    ],
  ])('%s: 415 naming the charset, as for CSV', async (header, type, charset) => {
    const res = await post('/v1/models/digits:predict', body, { 'content-type': header });
    expect(expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE').detail).toBe(
      `${type} with charset "${charset}" is not read: send the JSON as UTF-8 (charset=utf-8, or no charset)`,
    );
  });
});
