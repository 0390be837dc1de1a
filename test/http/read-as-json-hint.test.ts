/**
 * A body that is not JSON, read as JSON only because of its Content-Type (curl's form type for
 * `-d`/`--data-binary` without -H, or none), on a route that reads other types too: the
 * INVALID_JSON names why it was read as JSON and a type the body looks like among the route's
 * (src/http/json-body.ts, readAsJsonHint). A CSV posted to :recalibrate with curl's default got
 * only "Unexpected token 'p'" (newcomer review of 2026-12-04). JSON with a mistake in it, a body
 * sent as application/json, and a text body on a route that reads no text but JSON (predict: its
 * other type is float32 bytes, which a CSV's bytes would be read as) keep the plain message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { expectProblem } from './http-helpers.js';

const RECALIBRATE = '/v1/models/digits:recalibrate';
const PREDICT = '/v1/models/digits:predict';
const FORM = 'application/x-www-form-urlencoded';
const csv = 'pixel_0,pixel_1\n1,2\n3,4\n';
const BY_FORM =
  "read as JSON because its Content-Type is application/x-www-form-urlencoded, which curl sends for -d and --data-binary without -H; this route also reads application/x-ndjson, text/csv, application/octet-stream: name the body's type";

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
});
afterAll(async () => {
  await t.close();
});

const post = (url: string, payload: string | Buffer, type?: string) =>
  t.app.inject({
    method: 'POST',
    url,
    payload,
    headers: { ...ADMIN, ...(type === undefined ? {} : { 'content-type': type }) },
  });
const detail = async (url: string, payload: string | Buffer, type?: string) =>
  expectProblem(await post(url, payload, type), 400, 'INVALID_JSON').detail;

describe('a body read as JSON by its Content-Type alone', () => {
  it('a CSV sent to :recalibrate with curl’s form type names text/csv', async () => {
    expect(await detail(RECALIBRATE, csv, FORM)).toBe(
      `malformed JSON at line 1, column 1: Unexpected token 'p' (${BY_FORM}, e.g. -H 'Content-Type: text/csv')`,
    );
  });

  it('NDJSON lines name application/x-ndjson; a CSV without a header or with a byte-order mark, text/csv', async () => {
    expect(await detail(RECALIBRATE, '[1,2]\n[3,4]\n', FORM)).toMatch(
      new RegExp(`\\(${BY_FORM}, e\\.g\\. -H 'Content-Type: application/x-ndjson'\\)$`),
    );
    expect(await detail(RECALIBRATE, '1,2\n3,4\n', FORM)).toMatch(
      /e\.g\. -H 'Content-Type: text\/csv'\)$/,
    );
    expect(await detail(RECALIBRATE, `\uFEFF${csv}`, FORM)).toMatch(
      /e\.g\. -H 'Content-Type: text\/csv'\)$/,
    );
  });

  it('float32 bytes sent untyped to :predict name application/octet-stream', async () => {
    const rows = Buffer.from(new Float32Array(16).buffer); // zeros: NUL bytes, valid UTF-8
    expect(await detail(PREDICT, rows)).toBe(
      "malformed JSON at line 1, column 1: Unexpected token U+0000 (read as JSON because it was sent with no Content-Type; this route also reads application/octet-stream: name the body's type, e.g. -H 'Content-Type: application/octet-stream')",
    );
  });

  it('no hint for text on :predict, for application/json, nor for JSON with a mistake in it', async () => {
    // Read as float32 bytes, a CSV's text would be predicted on (a 200 of nonsense).
    expect(await detail(PREDICT, csv, FORM)).toBe(
      "malformed JSON at line 1, column 1: Unexpected token 'p'",
    );
    expect(await detail(PREDICT, '  x')).toBe(
      "malformed JSON at line 1, column 3: Unexpected token 'x'",
    );
    expect(await detail(RECALIBRATE, csv, 'application/json')).toBe(
      "malformed JSON at line 1, column 1: Unexpected token 'p'",
    );
    expect(await detail(RECALIBRATE, '{"instances": [[1, 2],]}', FORM)).not.toContain(
      'read as JSON because',
    );
    expect(await detail(RECALIBRATE, '{"instances": [[1, 2]]} x', FORM)).not.toContain(
      'read as JSON because',
    );
  });
});
