/**
 * A body that is no JSON from its first character, read as JSON only because of its Content-Type
 * (curl's form type for `-d`/`--data-binary` without -H, or none), on a route that reads other
 * types too: the INVALID_JSON names why it was read as JSON and the types the route also reads.
 * A CSV posted to :recalibrate with curl's default got only "Unexpected token 'p'" (newcomer
 * review of 2026-12-04). JSON with a mistake in it, or a body sent as application/json, keeps the
 * plain message.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { expectProblem } from './http-helpers.js';

const RECALIBRATE = '/v1/models/digits:recalibrate';
const PREDICT = '/v1/models/digits:predict';
const FORM = 'application/x-www-form-urlencoded';
const csv = 'pixel_0,pixel_1\n1,2\n3,4\n';

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
});
afterAll(async () => {
  await t.close();
});

const post = (url: string, payload: string, type?: string) =>
  t.app.inject({
    method: 'POST',
    url,
    payload,
    headers: { ...ADMIN, ...(type === undefined ? {} : { 'content-type': type }) },
  });

describe('a body read as JSON by its Content-Type alone', () => {
  it('a CSV sent to :recalibrate with curl’s form type names text/csv', async () => {
    const problem = expectProblem(await post(RECALIBRATE, csv, FORM), 400, 'INVALID_JSON');
    expect(problem.detail).toBe(
      "malformed JSON at line 1, column 1: Unexpected token 'p' (read as JSON because its Content-Type is application/x-www-form-urlencoded, which curl sends for -d and --data-binary without -H; this route also reads application/x-ndjson, text/csv, application/octet-stream: name the body's type, e.g. -H 'Content-Type: text/csv')",
    );
  });

  it('a body that is no JSON sent untyped to :predict names application/octet-stream', async () => {
    const problem = expectProblem(await post(PREDICT, '  x', undefined), 400, 'INVALID_JSON');
    expect(problem.detail).toBe(
      "malformed JSON at line 1, column 3: Unexpected token 'x' (read as JSON because it was sent with no Content-Type; this route also reads application/octet-stream: name the body's type, e.g. -H 'Content-Type: application/octet-stream')",
    );
  });

  it('no hint for application/json, nor for JSON with a mistake in it', async () => {
    const typed = expectProblem(
      await post(RECALIBRATE, csv, 'application/json'),
      400,
      'INVALID_JSON',
    );
    expect(typed.detail).toBe("malformed JSON at line 1, column 1: Unexpected token 'p'");
    const mistaken = expectProblem(
      await post(RECALIBRATE, '{"instances": [[1, 2],]}', FORM),
      400,
      'INVALID_JSON',
    );
    expect(mistaken.detail).not.toContain('read as JSON because');
  });
});
