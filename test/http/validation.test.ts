/**
 * Every validation rule of the prediction API, with the exact RFC 9457 problem it gives: status,
 * Content-Type (application/json on these protocol routes, docs/errors.md),
 * type/title/status/detail/instance/code/error, and
 * `errors: [{path, message}]` naming each offending place.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { noteSchema } from '../../src/service/index.js';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsRow, expectInvalid, expectProblem, inferBody } from './http-helpers.js';

let t: TestApp;

beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
});
afterAll(async () => {
  await t.close();
});

const PREDICT = '/v1/models/digits:predict';
const post = (payload: unknown, url = PREDICT, app = t) =>
  app.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });
const postRaw = (payload: string, contentType: string, url = PREDICT) =>
  t.app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType } });

/** Four valid rows, then row 3 with `value` at feature 17. */
function withBadValue(value: unknown): unknown[][] {
  const rows: unknown[][] = [0, 1, 2, 3].map((i) => digitsRow(i));
  rows[3]![17] = value;
  return rows;
}

describe('the problem document', () => {
  it('has every RFC 9457 field, the catalogue code, the `error` string and the request path as instance', async () => {
    const res = await post({ instances: withBadValue('x') });
    const body = expectProblem(res, 400, 'INVALID_INPUT', PREDICT);
    // A TF Serving route: exactly application/json, which KServe's client compares whole.
    expect(res.headers['content-type']).toBe('application/json');
    expect(body).toEqual({
      type: 'urn:normserve:problem:invalid-input',
      title: 'Invalid input',
      status: 400,
      detail: 'instances[3][17]: expected a finite number, got "x"',
      instance: PREDICT,
      code: 'INVALID_INPUT',
      error: 'instances[3][17]: expected a finite number, got "x"',
      errors: [{ path: 'instances[3][17]', message: 'expected a finite number, got "x"' }],
      request_id: res.headers['x-request-id'],
    });
  });

  it('keeps the query string in instance', async () => {
    const res = await post({ instances: withBadValue('x') }, `${PREDICT}?fused=false`);
    expectProblem(res, 400, 'INVALID_INPUT', `${PREDICT}?fused=false`);
  });

  it('carries the X-Request-Id header of the request, or a new one', async () => {
    const given = await t.app.inject({
      method: 'POST',
      url: PREDICT,
      payload: { instances: [] },
      headers: { 'x-request-id': 'client-chosen-id-1' },
    });
    expect(given.headers['x-request-id']).toBe('client-chosen-id-1');
    const generated = await post({ instances: [] });
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('feature values', () => {
  // What was sent is named (newcomer review of 2026-12-04: "got string" was missing).
  for (const [what, value, got] of [
    ['a string', 'x', '"x"'],
    ['a numeric string', '1.5', '"1.5"'],
    ['null', null, 'null'],
    ['a boolean', true, 'true'],
    ['an object', { v: 1 }, 'an object'],
    ['an array', [1], 'an array'],
  ] as const) {
    it(`${what} in instances[3][17] is "instances[3][17]: expected a finite number, got ${got}"`, async () => {
      expectInvalid(await post({ instances: withBadValue(value) }), [
        { path: 'instances[3][17]', message: `expected a finite number, got ${got}` },
      ]);
    });
  }

  it('the columnar format names inputs[3][17]', async () => {
    expectInvalid(await post({ inputs: withBadValue(null) }), [
      { path: 'inputs[3][17]', message: 'expected a finite number, got null' },
    ]);
  });

  it('a number too large for a double (1e999 parses to Infinity) is not finite', async () => {
    const row = JSON.stringify(digitsRow()).replace(/^\[0,/, '[1e999,');
    expectInvalid(await postRaw(`{"instances":[${row}]}`, 'application/json'), [
      { path: 'instances[0][0]', message: 'expected a finite number, got Infinity' },
    ]);
  });

  it('a number outside the float32 range (1e39) is refused at its place, not answered with NaN', async () => {
    const message =
      'outside the float32 range (it would round to ±Infinity; the largest float32 is 3.4028234663852886e+38)';
    expectInvalid(await post({ instances: withBadValue(1e39) }), [
      { path: 'instances[3][17]', message },
    ]);
    expectInvalid(await post({ inputs: withBadValue(-1e300) }), [
      { path: 'inputs[3][17]', message },
    ]);
    const row: number[] = digitsRow();
    row[5] = -1e39;
    expectInvalid(await post(inferBody([row]), '/v2/models/digits/infer'), [
      { path: 'inputs[0].data[5]', message },
    ]);
  });

  it('a JSON infer request without data says why: binary data needs a binary body', async () => {
    const input = { name: 'input', shape: [1, 64], datatype: 'FP32' };
    const binary = { inputs: [{ ...input, parameters: { binary_data_size: 256 } }] };
    expectInvalid(await post(binary, '/v2/models/digits/infer'), [
      {
        path: 'inputs[0].parameters.binary_data_size',
        message:
          'binary data needs a binary body (Content-Type: application/octet-stream with Inference-Header-Content-Length)',
      },
    ]);
    expectInvalid(await post({ inputs: [input] }, '/v2/models/digits/infer'), [
      {
        path: 'inputs[0].data',
        message: 'required (or parameters.binary_data_size for binary data)',
      },
    ]);
  });

  it('the largest float32 is accepted, also as numpy prints it (3.4028235e38)', async () => {
    const row: number[] = digitsRow();
    row[5] = 3.4028234663852886e38;
    expect((await post({ instances: [row] })).statusCode).toBe(200);
    // Written as numpy, Java and Rust print FLOAT32_MAX: above it as a double, but it rounds to it.
    const text = JSON.stringify({ instances: [digitsRow()] }).replace(
      /^(\{"instances":\[\[)0,/,
      '$1-3.4028235e38,',
    );
    expect(text).toContain('-3.4028235e38');
    expect((await postRaw(text, 'application/json')).statusCode).toBe(200);
    // The halfway point to 2^128 rounds to Infinity (ties to even) and is refused.
    expectInvalid(await post({ instances: withBadValue(2 ** 128 - 2 ** 103) }), [
      {
        path: 'instances[3][17]',
        message:
          'outside the float32 range (it would round to ±Infinity; the largest float32 is 3.4028234663852886e+38)',
      },
    ]);
  });

  it('rows whose outputs overflow float32 inside the network are refused by name', async () => {
    const huge = Array.from({ length: 64 }, () => 3e38);
    const message = "the model's outputs overflow float32 for this row (values too large)";
    expectInvalid(await post({ instances: [digitsRow(), huge] }), [
      { path: 'instances[1]', message },
    ]);
    expectInvalid(await post(inferBody([huge, digitsRow()]), '/v2/models/digits/infer'), [
      { path: 'inputs[0].data (row 0)', message },
    ]);
  });

  it('every offending place is listed; detail names the first three', async () => {
    const rows: unknown[][] = [0, 1, 2, 3, 4].map((i) => digitsRow(i));
    for (let r = 0; r < 5; r++) rows[r]![r] = 'x';
    const body = expectInvalid(
      await post({ instances: rows }),
      [0, 1, 2, 3, 4].map((r) => ({
        path: `instances[${r}][${r}]`,
        message: 'expected a finite number, got "x"',
      })),
    );
    expect(body.detail).toBe(
      'instances[0][0]: expected a finite number, got "x"; instances[1][1]: expected a finite number, got "x"; instances[2][2]: expected a finite number, got "x"; … and 2 more',
    );
  });
});

describe('rows', () => {
  it('a row of the wrong width is "instances[i]: expected 64 values, got n"', async () => {
    const rows = [digitsRow(0), digitsRow(1).slice(1), digitsRow(2), [...digitsRow(3), 0]];
    expectInvalid(await post({ instances: rows }), [
      { path: 'instances[1]', message: 'expected 64 values, got 63' },
      { path: 'instances[3]', message: 'expected 64 values, got 65' },
    ]);
  });

  it('the columnar format names inputs[i] for a wrong width', async () => {
    expectInvalid(await post({ inputs: [[1, 2, 3]] }), [
      { path: 'inputs[0]', message: 'expected 64 values, got 3' },
    ]);
  });

  it('at most ten wrong-width rows are listed', async () => {
    const rows = Array.from({ length: 12 }, () => [1, 2]);
    const body = expectProblem(await post({ instances: rows }), 400, 'INVALID_INPUT');
    expect(body.errors).toHaveLength(10);
  });

  it('zero rows is "instances: at least one row is required"', async () => {
    expectInvalid(await post({ instances: [] }), [
      { path: 'instances', message: 'at least one row is required' },
    ]);
    expectInvalid(await post({ inputs: [] }), [
      { path: 'inputs', message: 'at least one row is required' },
    ]);
  });

  it('instances that is not an array is "instances: expected an array of rows"', async () => {
    expectInvalid(await post({ instances: 5 }), [
      { path: 'instances', message: 'expected an array of rows' },
    ]);
  });

  it('a row that is not an array is "instances[i]: expected an array of numbers (one row)"', async () => {
    expectInvalid(await post({ instances: [digitsRow(), 7] }), [
      { path: 'instances[1]', message: 'expected an array of numbers (one row)' },
    ]);
  });
});

describe('batch size (MAX_BATCH_SIZE=8)', () => {
  let small: TestApp;
  beforeAll(async () => {
    small = await makeTestApp({ models: ['digits'], env: { MAX_BATCH_SIZE: '8' } });
  });
  afterAll(async () => {
    await small.close();
  });
  const rows = (n: number) => Array.from({ length: n }, (_, i) => digitsRow(i));

  it('8 rows are served', async () => {
    expect((await post({ instances: rows(8) }, PREDICT, small)).statusCode).toBe(200);
  });

  it('9 rows are a 413 BATCH_TOO_LARGE naming instances', async () => {
    expectInvalid(
      await post({ instances: rows(9) }, PREDICT, small),
      [{ path: 'instances', message: 'at most 8 rows per request (MAX_BATCH_SIZE), got 9' }],
      'BATCH_TOO_LARGE',
      413,
    );
  });

  it('9 rows in the columnar format are a 413 BATCH_TOO_LARGE naming inputs', async () => {
    expectInvalid(
      await post({ inputs: rows(9) }, PREDICT, small),
      [{ path: 'inputs', message: 'at most 8 rows per request (MAX_BATCH_SIZE), got 9' }],
      'BATCH_TOO_LARGE',
      413,
    );
  });

  it('9 numbers where rows belong are a 413 too: the row count is judged before the rows', async () => {
    expectInvalid(
      await post({ instances: [1, 2, 3, 4, 5, 6, 7, 8, 9] }, PREDICT, small),
      [{ path: 'instances', message: 'at most 8 rows per request (MAX_BATCH_SIZE), got 9' }],
      'BATCH_TOO_LARGE',
      413,
    );
  });

  it('9 rows through /v2 infer are a 413 BATCH_TOO_LARGE naming inputs[0].shape', async () => {
    expectInvalid(
      await post(inferBody(rows(9)), '/v2/models/digits/infer', small),
      [
        {
          path: 'inputs[0].shape',
          message: 'at most 8 rows per request (MAX_BATCH_SIZE), got 9',
        },
      ],
      'BATCH_TOO_LARGE',
      413,
    );
  });
});

describe('body size (BODY_LIMIT_BYTES=2048)', () => {
  let small: TestApp;
  beforeAll(async () => {
    small = await makeTestApp({ models: ['digits'], env: { BODY_LIMIT_BYTES: '2048' } });
  });
  afterAll(async () => {
    await small.close();
  });

  it('a body under the limit is served', async () => {
    const payload = JSON.stringify({ instances: [digitsRow()] });
    expect(payload.length).toBeLessThan(2048);
    const res = await small.app.inject({
      method: 'POST',
      url: PREDICT,
      payload,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(200);
  });

  it('a body over the limit is a 413 BODY_TOO_LARGE', async () => {
    const payload = JSON.stringify({ instances: Array.from({ length: 20 }, () => digitsRow()) });
    expect(payload.length).toBeGreaterThan(2048);
    const res = await small.app.inject({
      method: 'POST',
      url: PREDICT,
      payload,
      headers: { 'content-type': 'application/json' },
    });
    const body = expectProblem(res, 413, 'BODY_TOO_LARGE', PREDICT);
    // The setting and its value, as the decoded-body 413 says them (content-encoding.ts).
    expect(body.error).toBe(
      'the request body is larger than the limit (BODY_LIMIT_BYTES: 2048 bytes)',
    );
  });

  it('the limit holds for /v2 infer too', async () => {
    const res = await post(
      inferBody(Array.from({ length: 20 }, () => digitsRow())),
      '/v2/models/digits/infer',
      small,
    );
    expectProblem(res, 413, 'BODY_TOO_LARGE');
  });
});

describe('media types', () => {
  const json = JSON.stringify({ instances: [digitsRow()] });

  for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x']) {
    it(`${type} is a 415 UNSUPPORTED_MEDIA_TYPE`, async () => {
      const body = expectProblem(await postRaw(json, type), 415, 'UNSUPPORTED_MEDIA_TYPE', PREDICT);
      expect(body.error).toMatch(/application\/json/);
    });
  }

  it("the 415 lists every type the route reads, curl -d's type among the JSON ones", async () => {
    const accepts =
      'this route accepts application/json, application/x-www-form-urlencoded (read as JSON), application/octet-stream';
    for (const url of [PREDICT, '/v2/models/digits/infer']) {
      const res = await t.app.inject({
        method: 'POST',
        url,
        headers: { 'content-type': 'text/plain' },
        payload: json,
      });
      expect(expectProblem(res, 415, 'UNSUPPORTED_MEDIA_TYPE').detail).toBe(
        `unsupported Content-Type; ${accepts}`,
      );
    }
    // A route that reads JSON only (it declares no types).
    const activate = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:activate',
      headers: { ...ADMIN, 'content-type': 'text/plain' },
      payload: '{}',
    });
    expect(expectProblem(activate, 415, 'UNSUPPORTED_MEDIA_TYPE').detail).toBe(
      'unsupported Content-Type; this route accepts application/json, application/x-www-form-urlencoded (read as JSON)',
    );
  });

  it('application/json with a charset parameter is accepted', async () => {
    expect((await postRaw(json, 'application/json; charset=utf-8')).statusCode).toBe(200);
  });

  it("curl's -d type, application/x-www-form-urlencoded, is read as JSON", async () => {
    const res = await postRaw(json, 'application/x-www-form-urlencoded');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toHaveProperty('predictions');
  });

  it('an application/x-www-form-urlencoded body that is not JSON is a 400 INVALID_JSON', async () => {
    expectProblem(
      await postRaw('instances=1&b=2', 'application/x-www-form-urlencoded'),
      400,
      'INVALID_JSON',
    );
  });
});

describe('malformed JSON', () => {
  for (const [what, payload] of [
    ['a truncated body', '{"instances": [[1, 2'],
    ['a trailing comma', '{"instances": [[1, 2],]}'],
    ['single quotes', "{'instances': [[1]]}"],
    ['a word that only starts like Infinity', '{"instances": [[Infinite]]}'],
  ] as const) {
    it(`${what} is a 400 INVALID_JSON`, async () => {
      const body = expectProblem(
        await postRaw(payload, 'application/json'),
        400,
        'INVALID_JSON',
        PREDICT,
      );
      expect(body.title).toBe('Malformed JSON');
      expect(body.error).toMatch(/^malformed JSON/);
    });
  }

  for (const [what, payload, type, line, column, reason] of [
    [
      'a bad token',
      '{"instances": [[1, 2, x]]}',
      'application/json',
      1,
      23,
      "Unexpected token 'x'",
    ],
    [
      'a trailing comma on line 3',
      '{\n  "instances": [\n    [1, 2,]\n  ]\n}',
      'application/x-www-form-urlencoded',
      3,
      11,
      "Unexpected token ']'",
    ],
    [
      'a missing brace',
      '{"instances": [[1]]',
      'application/json',
      1,
      20,
      "Expected ',' or '}' after property value",
    ],
    [
      'a cut body',
      '{"instances": [[1',
      'application/json',
      1,
      18,
      "Expected ',' or ']' after array element",
    ],
    ['a lone word', 'tru', 'application/json', 1, 4, 'Unexpected end'],
    // NaN where no value may stand is a syntax error, not a refused non-finite input.
    [
      'a missing comma before NaN',
      '{"instances": [[1 NaN]]}',
      'application/json',
      1,
      19,
      "Expected ',' or ']' after array element",
    ],
    [
      'NaN as an unquoted key',
      '{NaN: 1}',
      'application/json',
      1,
      2,
      "Expected property name or '}'",
    ],
  ] as const) {
    it(`${what}: the problem gives line, column and offset of the error`, async () => {
      const body = expectProblem(await postRaw(payload, type), 400, 'INVALID_JSON', PREDICT);
      const offset =
        payload
          .split('\n')
          .slice(0, line - 1)
          .join('\n').length +
        (line > 1 ? 1 : 0) +
        column -
        1;
      expect(body.position).toEqual({ line, column, offset });
      expect(body.error).toBe(`malformed JSON at line ${line}, column ${column}: ${reason}`);
    });
  }

  describe('the detail carries no byte of the body past the token it names', () => {
    const UNTYPED_HINT =
      " (read as JSON because it was sent with no Content-Type; this route also reads application/octet-stream: name the body's type, e.g. -H 'Content-Type: application/octet-stream')";
    // V8 quotes the body ("hello" is not valid JSON), cut to ten characters around the token
    // with ... before, after or both: each form, and the word-only one ("undefined").
    const secret = 'hello-this-is-a-long-secret-body-value';
    const rows = '1, '.repeat(20);
    const at = (payload: string, part: string) => payload.indexOf(part) + 1;
    const middle = `{"instances": [[${rows}${secret}, ${rows}1]]}`;
    const end = `{"instances": [[${rows}secret]]}`;
    for (const [what, payload, column, token] of [
      ['a short body', 'hello', 1, "'h'"],
      ['a long body wrong at its start', secret, 1, "'h'"],
      ['a long body wrong in its middle', middle, at(middle, secret), "'h'"],
      ['a long body wrong near its end', end, at(end, 'secret'), "'s'"],
      ['a body of the word undefined', 'undefined', 1, "'u'"],
      ['an emoji where a value starts', '{"instances": [[😀]]}', 17, 'U+1F600'],
    ] as const) {
      it(`${what}: only the position and the token`, async () => {
        for (const type of ['application/json', undefined]) {
          const res = await t.app.inject({
            method: 'POST',
            url: PREDICT,
            payload,
            headers: type === undefined ? {} : { 'content-type': type },
          });
          const body = expectProblem(res, 400, 'INVALID_JSON', PREDICT);
          // Text: no type to suggest on predict, which reads JSON and binary only (json-body.ts).
          expect(body.detail).toBe(
            `malformed JSON at line 1, column ${column}: Unexpected token ${token}`,
          );
          expect(res.body).not.toContain('hello-');
          expect(res.body).not.toContain('1, 1');
        }
      });
    }

    it('float32 rows posted untyped: no NUL in the reply, the character named by its code, the binary type named', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: PREDICT,
        payload: Buffer.from(new Float32Array(16).buffer),
      });
      const body = expectProblem(res, 400, 'INVALID_JSON', PREDICT);
      expect(body.detail).toBe(
        `malformed JSON at line 1, column 1: Unexpected token U+0000${UNTYPED_HINT}`,
      );
      for (const echo of ['\u0000', '\\u0000', '\uFFFD', '\\ufffd']) {
        expect(res.body.toLowerCase()).not.toContain(echo);
      }
    });
  });

  it('an empty body with Content-Type application/json is a 400 INVALID_JSON', async () => {
    expectProblem(await postRaw('', 'application/json'), 400, 'INVALID_JSON');
  });

  it('a POST with no body at all says so, on predict and infer', async () => {
    for (const url of [PREDICT, '/v2/models/digits/infer']) {
      const res = await t.app.inject({ method: 'POST', url });
      expectInvalid(res, [
        { path: '(root)', message: 'no body (or JSON null); expected a JSON object' },
      ]);
    }
  });

  it('a JSON body that is not an object is a 400 INVALID_INPUT at (root)', async () => {
    expectInvalid(await postRaw('[]', 'application/json'), [
      { path: '(root)', message: 'expected an object, got an array' },
    ]);
  });
});

describe('NaN and Infinity tokens (valid JSON for TF Serving)', () => {
  const refusal = (token: string, line: number, column: number) =>
    `non-finite number at line ${line}, column ${column}: ${token} is not accepted as an input (NaN, Infinity and -Infinity are refused; send finite numbers)`;

  for (const [token, payload, url, line, column] of [
    ['NaN', '{"instances": [[1, NaN]]}', PREDICT, 1, 20],
    ['Infinity', '{"instances": [[Infinity, 2]]}', PREDICT, 1, 17],
    ['-Infinity', '{"instances": [[1, -Infinity]]}', PREDICT, 1, 20],
    ['-Inf', '{"instances": [[1, -Inf]]}', PREDICT, 1, 20],
    ['NaN', '{"instances": [[1, 2]], "x": NaN}', PREDICT, 1, 30],
    ['NaN', 'NaN', PREDICT, 1, 1],
    ['-Infinity', '-Infinity', PREDICT, 1, 1],
    [
      '-Infinity',
      '{\n  "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32",\n    "data": [1, -Infinity]}]\n}',
      '/v2/models/digits/infer',
      3,
      17,
    ],
  ] as const) {
    it(`${token} at line ${line}, column ${column} of ${url} is a 400 INVALID_JSON saying non-finite inputs are refused`, async () => {
      const body = expectProblem(
        await postRaw(payload, 'application/json', url),
        400,
        'INVALID_JSON',
      );
      expect(body.error).toBe(refusal(token, line, column));
      expect(body.error).not.toMatch(/malformed/);
      const offset =
        payload
          .split('\n')
          .slice(0, line - 1)
          .join('\n').length + (line > 1 ? 1 : 0);
      expect(body.position).toEqual({ line, column, offset: offset + column - 1 });
    });
  }

  it('in the JSON header of a binary infer request too', async () => {
    const header =
      '{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","parameters":{"binary_data_size":256}}],"parameters":{"x":NaN}}';
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(header.length),
      },
      payload: Buffer.concat([Buffer.from(header), Buffer.alloc(256)]),
    });
    const body = expectProblem(res, 400, 'INVALID_JSON');
    expect(body.error).toBe(refusal('NaN', 1, header.indexOf('NaN') + 1));
  });

  it('"NaN" as a string is a value error, not a JSON one', async () => {
    expectInvalid(await post({ instances: withBadValue('NaN') }), [
      { path: 'instances[3][17]', message: 'expected a finite number, got "NaN"' },
    ]);
  });
});

describe('prototype poisoning', () => {
  const row = JSON.stringify(digitsRow());
  for (const [what, payload] of [
    ['"__proto__"', `{"__proto__": {"polluted": "yes"}, "instances": [${row}]}`],
    [
      '"constructor": {"prototype": …}',
      `{"constructor": {"prototype": {"polluted": "yes"}}, "instances": [${row}]}`,
    ],
    ['a nested "__proto__"', `{"instances": [${row}], "x": {"__proto__": {"polluted": "yes"}}}`],
  ] as const) {
    for (const type of ['application/json', 'application/x-www-form-urlencoded']) {
      it(`${what} (${type}) is a 400 INVALID_JSON and Object.prototype stays clean`, async () => {
        const body = expectProblem(await postRaw(payload, type), 400, 'INVALID_JSON');
        expect(body.error).toMatch(/__proto__/);
        expect(Object.hasOwn(Object.prototype, 'polluted')).toBe(false);
        expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
      });
    }
  }
});

describe('a key repeated in one object', () => {
  // JSON.parse keeps the last value and RapidJSON (TF Serving, Triton) the first: refused, so that
  // nothing between the client and the server reads another request than the one served.
  const row = JSON.stringify(digitsRow());
  const infer = '/v2/models/digits/infer';
  const recalibrate = '/v1/models/digits:recalibrate';
  for (const [what, url, payload, duplicate, where] of [
    [
      'instances, the first one wrong',
      PREDICT,
      `{"instances": [[1]],\n "instances": [${row}]}`,
      '"instances"',
      'the top-level object',
    ],
    [
      "an input's name",
      infer,
      `{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ${row}, "name": "x"}]}`,
      '"name"',
      'the object at "inputs"',
    ],
    [
      'a parameter',
      infer,
      `{"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ${row}}], "parameters": {"a": 1, "a": 2}}`,
      '"a"',
      'the object at "parameters"',
    ],
    [
      'mode, spelled once with an escape',
      recalibrate,
      `{"mode": "exact", "instances": [${row}], "m\\u006fde": "running"}`,
      '"mode"',
      'the top-level object',
    ],
  ] as const) {
    it(`${what}: 400 INVALID_JSON naming the key, its object and the second one's place`, async () => {
      const res = await t.app.inject({
        method: 'POST',
        url,
        payload,
        headers: { 'content-type': 'application/json', ...(url === recalibrate ? ADMIN : {}) },
      });
      const body = expectProblem(res, 400, 'INVALID_JSON', url);
      const offset = payload.lastIndexOf(url === recalibrate ? '"m\\u006fde"' : duplicate);
      const line = payload.slice(0, offset).split('\n').length;
      const column = offset - payload.lastIndexOf('\n', offset - 1);
      expect(body.position).toEqual({ line, column, offset });
      expect(body.detail).toBe(
        `repeated key at line ${line}, column ${column}: the key ${duplicate} occurs twice in ${where}; parsers differ on which one counts (RFC 8259 §4), so each key must occur once`,
      );
    });
  }

  it('the same key in sibling objects, in strings and as a value is no repetition', async () => {
    const named = `{"instances": [{"input": ${row}}, {"input": ${row}}]}`;
    expect((await postRaw(named, 'application/json')).statusCode).toBe(200);
    // "name" in each input and output object, and as the id's value.
    const payload = JSON.stringify(
      inferBody([digitsRow()], { outputs: ['label', 'logits'], id: 'name' }),
    );
    const res = await postRaw(payload, 'application/json', infer);
    expect(res.statusCode, res.body).toBe(200);
  });
});

describe('the request object', () => {
  it('both instances and inputs is a 400 naming (root)', async () => {
    expectInvalid(await post({ instances: [digitsRow()], inputs: [digitsRow()] }), [
      {
        path: '(root)',
        message:
          'exactly one of "instances" (row format) or "inputs" (columnar format) is required',
      },
    ]);
  });

  it('neither instances nor inputs is the same 400', async () => {
    expectInvalid(await post({}), [
      {
        path: '(root)',
        message:
          'exactly one of "instances" (row format) or "inputs" (columnar format) is required',
      },
    ]);
  });

  it('an unknown field is a 400 naming that field, and the field it likely meant', async () => {
    expectInvalid(await post({ instance: [digitsRow()], instances: [digitsRow()] }), [
      { path: 'instance', message: 'unknown field (did you mean "instances"?)' },
    ]);
    expectInvalid(await post({ instances: [digitsRow()], signaturename: 'serving_default' }), [
      { path: 'signaturename', message: 'unknown field (did you mean "signature_name"?)' },
    ]);
    // In the query string too.
    expectInvalid(await post({ instances: [digitsRow()] }, `${PREDICT}?fuse=false`), [
      { path: 'query.fuse', message: 'unknown query parameter (did you mean "fused"?)' },
    ]);
    // Nothing close: no guess.
    expectInvalid(await post({ instances: [digitsRow()], rows: 1 }), [
      { path: 'rows', message: 'unknown field' },
    ]);
  });

  it('an infer request with an unknown field, at the top, in an input or an output, is a 400 naming it', async () => {
    const INFER = '/v2/models/digits/infer';
    const body = inferBody([digitsRow()]);
    const [input] = body.inputs as Record<string, unknown>[];
    expectInvalid(await post({ ...body, ouputs: [{ name: 'logits' }] }, INFER), [
      { path: 'ouputs', message: 'unknown field (did you mean "outputs"?)' },
    ]);
    expectInvalid(await post({ ...body, inputs: [{ ...input, dtype: 'FP32' }] }, INFER), [
      { path: 'inputs[0].dtype', message: 'unknown field' },
    ]);
    const parameter = { binary_data: true };
    expectInvalid(await post({ ...body, outputs: [{ name: 'logits', parameter }] }, INFER), [
      { path: 'outputs[0].parameter', message: 'unknown field (did you mean "parameters"?)' },
    ]);
    // Inside parameters any key goes: the protocol's extensions live there.
    const extended = { ...body, parameters: { sequence_id: 7 } };
    expect((await post(extended, INFER)).statusCode).toBe(200);
  });

  it('an unknown field named with quotes, control characters or at length is quoted: escaped and cut', async () => {
    expectInvalid(await post({ instances: [digitsRow()], 'foo\u0000"bar\n': 1 }), [
      { path: '["foo\\u0000\\"bar\\n"]', message: 'unknown field' },
    ]);
    const long = `${'k'.repeat(1000)}`;
    const body = expectInvalid(await post({ instances: [digitsRow()], [long]: 1 }), [
      { path: `["${'k'.repeat(64)}…"]`, message: 'unknown field' },
    ]);
    expect(body.error.length).toBeLessThan(100);
    // A key that is an identifier stays as it is; one that is not is quoted, as in JavaScript.
    expectInvalid(await post({ instances: [digitsRow()], 'x-y': 1, '': 2 }), [
      { path: '["x-y"]', message: 'unknown field' },
      { path: '[""]', message: 'unknown field' },
    ]);
    expectInvalid(await post({ instances: [digitsRow()] }, `${PREDICT}?a%0Ab%E2%80%AE=1`), [
      { path: 'query["a\\nb\\u202e"]', message: 'unknown query parameter' },
    ]);
  });

  it('a signature_name other than serving_default is a 400 naming signature_name, as in TF Serving', async () => {
    expectInvalid(await post({ signature_name: 1, instances: [digitsRow()] }), [
      { path: 'signature_name', message: 'expected one of "serving_default", "", got 1' },
    ]);
    expectInvalid(await post({ signature_name: 'predict', inputs: [digitsRow()] }), [
      { path: 'signature_name', message: 'expected one of "serving_default", "", got "predict"' },
    ]);
  });

  it('an empty signature_name is the default signature, as TF Serving reads it (and as the metadata shows it)', async () => {
    const res = await post({ signature_name: '', instances: [digitsRow()] });
    expect(res.statusCode).toBe(200);
  });
});

describe('query and path parameters', () => {
  it('fused other than true/false is a 400 naming query.fused', async () => {
    expectInvalid(await post({ instances: [digitsRow()] }, `${PREDICT}?fused=yes`), [
      { path: 'query.fused', message: 'expected one of "true", "false", got "yes"' },
    ]);
  });

  it('a query parameter out of its range or its set names what it takes and quotes what came', async () => {
    expectInvalid(await post({ instances: [digitsRow()] }, `${PREDICT}?fused=1`), [
      { path: 'query.fused', message: 'expected one of "true", "false", got "1"' },
    ]);
    const recalibrate = (query: string) =>
      t.app.inject({
        method: 'POST',
        url: `/v1/models/digits:recalibrate?${query}`,
        headers: ADMIN,
        payload: { instances: [digitsRow(), digitsRow(1)] },
      });
    expectInvalid(await recalibrate('mode=fast'), [
      { path: 'query.mode', message: 'expected one of "exact", "prior", "running", got "fast"' },
    ]);
    expectInvalid(await recalibrate('batch_size=0'), [
      { path: 'query.batch_size', message: 'expected an integer from 1 to 65536, got 0' },
    ]);
    // Text that is no number is quoted as sent (not NaN), and an empty value is not 0.
    expectInvalid(await recalibrate('prior_strength=strong'), [
      {
        path: 'query.prior_strength',
        message: 'expected a number from 0 to 1000000000000, got "strong"',
      },
    ]);
    expectInvalid(await recalibrate('batch_size='), [
      { path: 'query.batch_size', message: 'expected an integer from 1 to 65536, got ""' },
    ]);
    expectInvalid(await recalibrate(`note=${'n'.repeat(2000)}`), [
      { path: 'query.note', message: /^expected at most \d+ characters, got 2000$/ },
    ]);
  });

  it('an unknown query parameter is a 400 naming it', async () => {
    expectInvalid(await post({ instances: [digitsRow()] }, `${PREDICT}?fast=true`), [
      { path: 'query.fast', message: 'unknown query parameter' },
    ]);
  });

  it('version 0 is a 400 naming path.version', async () => {
    expectInvalid(await post({ instances: [digitsRow()] }, '/v2/models/digits/versions/0/infer'), [
      { path: 'path.version', message: 'expected a positive integer, got "0"' },
    ]);
  });

  // One version rule for every route with a version segment: a malformed version is the same
  // 400, worded the same, whether a TF Serving verb (`:predict`, `:activate`) follows it or not
  // (the verb routes once answered 404 "no route" for `abc`, the others 400).
  describe('a malformed version is the same 400 naming path.version on every version route', () => {
    const routes = [
      ['GET', (v: string) => `/v1/models/digits/versions/${v}`, undefined],
      ['GET', (v: string) => `/v1/models/digits/versions/${v}/metadata`, undefined],
      ['GET', (v: string) => `/v1/models/digits/versions/${v}/model.onnx`, undefined],
      ['POST', (v: string) => `/v1/models/digits/versions/${v}:predict`, undefined],
      ['POST', (v: string) => `/v1/models/digits/versions/${v}:activate`, ADMIN],
      ['DELETE', (v: string) => `/v1/models/digits/versions/${v}`, ADMIN],
      ['GET', (v: string) => `/v2/models/digits/versions/${v}`, undefined],
      ['GET', (v: string) => `/v2/models/digits/versions/${v}/ready`, undefined],
      ['POST', (v: string) => `/v2/models/digits/versions/${v}/infer`, undefined],
    ] as const;
    for (const [method, url, headers] of routes) {
      for (const version of ['abc', '0', '01', '-1', '1.5', '1e3']) {
        it(`${method} ${url(version)} → 400 path.version`, async () => {
          const payload =
            method !== 'POST'
              ? undefined
              : url('').endsWith('/infer')
                ? inferBody([digitsRow()])
                : url('').endsWith(':predict')
                  ? { instances: [digitsRow()] }
                  : {};
          const res = await t.app.inject({
            method,
            url: url(version),
            ...(headers ? { headers } : {}),
            ...(payload ? { payload } : {}),
          });
          expectInvalid(res, [
            { path: 'path.version', message: `expected a positive integer, got "${version}"` },
          ]);
        });
      }
    }
  });

  it('a model name starting with "_" is a 400 naming path.name', async () => {
    expectInvalid(await t.app.inject({ url: '/v1/models/_digits' }), [
      {
        path: 'path.name',
        message:
          'expected a model name: letters, digits, ".", "_" and "-" (at most 128), starting with a letter or digit, got "_digits"',
      },
    ]);
  });
});

describe('not found', () => {
  it('an unknown model is a 404 MODEL_NOT_FOUND', async () => {
    const body = expectProblem(
      await post({ instances: [digitsRow()] }, '/v1/models/nope:predict'),
      404,
      'MODEL_NOT_FOUND',
      '/v1/models/nope:predict',
    );
    expect(body.error).toBe('model "nope" is not in the repository');
  });

  it('a bad body (then a bad query) to an unknown model or version is a 400: the request is judged before the model is looked up, as Fastify orders its own validation', async () => {
    for (const url of [
      '/v1/models/nope:predict',
      '/v1/models/digits/versions/2:predict',
      '/v2/models/nope/infer',
      '/v2/models/digits/versions/2/infer',
    ]) {
      const bad = url.endsWith(':predict') ? { instances: 'x' } : {};
      expectProblem(await post(bad, url), 400, 'INVALID_INPUT', url);
    }
    const query = '/v1/models/nope:predict?fused=maybe';
    expectInvalid(await post({ instances: [digitsRow()] }, query), [
      { path: 'query.fused', message: 'expected one of "true", "false", got "maybe"' },
    ]);
    // The body's problems come before the query's.
    expectInvalid(await post({ instances: 'x' }, query), [
      { path: 'instances', message: 'expected an array of rows' },
    ]);
  });

  it('an unknown version is a 404 VERSION_NOT_FOUND', async () => {
    const body = expectProblem(
      await post({ instances: [digitsRow()] }, '/v1/models/digits/versions/2:predict'),
      404,
      'VERSION_NOT_FOUND',
    );
    expect(body.error).toBe('model "digits" has no version 2');
  });

  it('an unknown route is a 404 NOT_FOUND problem naming method and path', async () => {
    const body = expectProblem(
      await t.app.inject({ url: '/v3/models?x=1' }),
      404,
      'NOT_FOUND',
      '/v3/models?x=1',
    );
    expect(body.error).toBe(
      'no route GET /v3/models; GET / lists the entry points, /docs every route',
    );
  });

  it('a Triton extension or TF Serving API not served is a 404 that names it and what to use instead', async () => {
    for (const [method, url, says] of [
      [
        'GET',
        '/v2/models/digits/config',
        "Triton's model configuration extension is not served; GET /v2/models/{name} has",
      ],
      ['GET', '/v2/models/digits/versions/1/config', "Triton's model configuration extension"],
      [
        'GET',
        '/v2/models/digits/stats',
        "Triton's statistics extension is not served; GET /metrics",
      ],
      [
        'POST',
        '/v2/repository/index',
        "Triton's model repository extension is not served; GET /v1/models",
      ],
      [
        'GET',
        '/v2/trace/setting',
        "Triton's trace and logging extensions are not served; LOG_LEVEL",
      ],
      ['GET', '/v2/logging', "Triton's trace and logging extensions are not served"],
      ['GET', '/v2/systemsharedmemory/status', "Triton's shared-memory extensions are not served"],
      ['GET', '/v2/cudasharedmemory/status', "Triton's shared-memory extensions are not served"],
      [
        'POST',
        '/v1/models/digits/labels/stable:predict',
        "TF Serving's version labels are not served; /v1/models/{name}/versions/{version}",
      ],
      ['GET', '/v1/models/digits/labels/stable/metadata', "TF Serving's version labels"],
      [
        'POST',
        '/v1/models/digits:classify',
        "TF Serving's Classify and Regress API (tf.Example inputs) is not served; :predict",
      ],
      ['POST', '/v1/models/digits/versions/1:regress', "TF Serving's Classify and Regress API"],
      // The colon percent-encoded, as the router reads :predict too.
      ['POST', '/v1/models/digits%3Aclassify', "TF Serving's Classify and Regress API"],
    ] as const) {
      const body = expectProblem(await t.app.inject({ method, url }), 404, 'NOT_FOUND', url);
      expect(body.error).toMatch(new RegExp(`^no route ${method} ${url.replaceAll('/', '\\/')}; `));
      expect(body.error).toContain(says);
      expect(body.error).toMatch(/\. GET \/ lists the entry points, \/docs every route$/);
    }
  });
});

describe('405 Method Not Allowed, with Allow, on every route', () => {
  for (const [method, url, allow, route] of [
    // TF Serving's verbs: not read as a model name "digits:predict" or a version "1:activate".
    ['GET', '/v1/models/digits:predict', 'POST', '/v1/models/{name}:predict'],
    [
      'GET',
      '/v1/models/digits/versions/1:predict',
      'POST',
      '/v1/models/{name}/versions/{version}:predict',
    ],
    ['PUT', '/v1/models/digits:recalibrate', 'POST', '/v1/models/{name}:recalibrate'],
    [
      'DELETE',
      '/v1/models/digits/versions/1:activate',
      'POST',
      '/v1/models/{name}/versions/{version}:activate',
    ],
    ['GET', '/v2/models/digits/infer', 'POST', '/v2/models/{name}/infer'],
    ['POST', '/v1/models/digits', 'GET, HEAD', '/v1/models/{name}'],
    [
      'PUT',
      '/v1/models/digits/versions/1',
      'GET, HEAD, DELETE',
      '/v1/models/{name}/versions/{version}',
    ],
    ['DELETE', '/healthz', 'GET, HEAD', '/healthz'],
    ['POST', '/', 'GET, HEAD', '/'],
    ['PATCH', '/v1/jobs/abc?x=1', 'GET, HEAD', '/v1/jobs/{id}'],
    ['OPTIONS', '/v1/models/digits:predict', 'POST', '/v1/models/{name}:predict'],
    ['OPTIONS', '/v1/models/digits', 'GET, HEAD', '/v1/models/{name}'],
    // A parameter the router decoded fills no pattern exactly: not labelled, never the raw URL.
    ['GET', '/v1/models/dig%41ts:predict', 'POST', 'unmatched'],
  ] as const) {
    it(`${method} ${url} → 405, Allow: ${allow}, counted under route ${route}`, async () => {
      const counted = async () => {
        const text = (await t.app.inject({ url: '/metrics' })).body;
        const series = `normserve_http_requests_total{method="${method}",route="${route}",status="405",model="",version=""} `;
        const line = text.split('\n').find((l) => l.startsWith(series));
        return line === undefined ? 0 : Number(line.slice(series.length));
      };
      const before = await counted();
      const res = await t.app.inject({ method, url });
      const body = expectProblem(res, 405, 'METHOD_NOT_ALLOWED', url);
      expect(res.headers.allow).toBe(allow);
      expect(body.error).toBe(
        `${method} is not allowed on ${url.split('?')[0]}; it answers ${allow}`,
      );
      // Counted under the pattern of the route at that path, never under the raw URL.
      expect(await counted()).toBe(before + 1);
    });
  }

  it('a file missing under /docs/static is a 404, not a 405 naming its own method in Allow', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const url = '/docs/static/nonexistent.js';
      const res = await t.app.inject({ method, url });
      expect(res.statusCode).toBe(404);
      expect(res.headers.allow).toBeUndefined();
      if (method === 'GET') expectProblem(res, 404, 'NOT_FOUND', url);
    }
  });

  it('HEAD on a POST-only route is a 405 whose document names HEAD (its length, as HEAD sends no body)', async () => {
    const url = '/v1/models/digits:predict';
    const head = await t.app.inject({ method: 'HEAD', url });
    expect(head.statusCode).toBe(405);
    expect(head.headers.allow).toBe('POST');
    expect(head.body).toBe('');
    // The same document as GET's but for the method's name, twice (detail and error); request
    // ids have one length.
    const get = await t.app.inject({ method: 'GET', url });
    expect(get.json().error).toBe(`GET is not allowed on ${url}; it answers POST`);
    expect(Number(head.headers['content-length'])).toBe(
      Buffer.byteLength(get.body.replaceAll('GET is not allowed', 'HEAD is not allowed')),
    );
  });

  it('the routes still answer their own methods, and bad names stay validation errors', async () => {
    expect((await t.app.inject({ url: '/v1/models/digits' })).statusCode).toBe(200);
    expect((await t.app.inject({ url: '/v1/models/digits/versions/1' })).statusCode).toBe(200);
    expectProblem(await t.app.inject({ url: '/v1/models/dig%20its' }), 400, 'INVALID_INPUT');
    expectProblem(
      await t.app.inject({ url: '/v1/models/digits/versions/x' }),
      400,
      'INVALID_INPUT',
    );
  });
});

describe('a version note', () => {
  it('holds 1,000 characters as zod counts them (code points), for HTTP and the CLI alike', () => {
    expect(noteSchema.safeParse('\u{1F600}'.repeat(1000)).success).toBe(true);
    expect(noteSchema.safeParse('\u{1F600}'.repeat(1001)).success).toBe(false);
    expect(noteSchema.safeParse('n'.repeat(1001)).success).toBe(false);
  });
});
