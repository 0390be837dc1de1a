/**
 * The arrays and objects, and the strings, of a JSON body, counted before it is parsed
 * (src/http/json-budget.ts): millions of empty rows, keys or short strings held the event loop for
 * seconds in JSON.parse before any limit looked at them. A body over its route's budget gets the
 * route's 413 without being parsed; a valid body never does, at the row limit of the deepest
 * bundled model ([1, 8, 8]) and with every tensor and parameter an infer request may name included.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENVELOPE_STRINGS } from '../../src/http/json-budget.js';
import { hasMoreContainers, hasMoreStrings } from '../../src/http/json-counts.js';
import { InputShape } from '../../src/service/index.js';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { binaryInfer, expectProblem } from './http-helpers.js';

const JSON_HEADERS = { 'content-type': 'application/json' };
/** `n` empty arrays (or objects), comma-separated: 3 characters each. */
const empties = (n: number, item = '[]') => new Array(n).fill(item).join(',');
/** A [1, 8, 8] sample nested, single digits: the densest valid form (147 characters, 10 arrays). */
const cnnSample = (seed: number) => [
  Array.from({ length: 8 }, (_, h) => Array.from({ length: 8 }, (_, w) => (seed + h * 8 + w) % 10)),
];
const cnnRows = (n: number) => Array.from({ length: n }, (_, r) => cnnSample(r));
/** The strings JSON.parse builds for `value`: its keys and string values, counted on the value. */
const stringsIn = (value: unknown): number => {
  if (typeof value === 'string') return 1;
  if (Array.isArray(value)) return value.reduce((n: number, v) => n + stringsIn(v), 0);
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).reduce((n, [, v]) => n + 1 + stringsIn(v), 0);
  return 0;
};
/** `n` keys `"k0":0,"k1":0,…` (5+ characters each), comma-separated. */
const keys = (n: number) => Array.from({ length: n }, (_, i) => `"k${i}":0`).join(',');
/** `n` short distinct strings, comma-separated. */
const strings = (n: number) => Array.from({ length: n }, (_, i) => `"${i.toString(36)}"`).join(',');
const digitsRow = Array.from({ length: 64 }, (_, i) => i % 10);

describe('hasMoreContainers', () => {
  // Exactly `n` arrays and objects: more than n − 1, not more than n.
  const holds = (text: string, n: number) => {
    expect(hasMoreContainers(text, n - 1), `more than ${n - 1}`).toBe(true);
    expect(hasMoreContainers(text, n), `more than ${n}`).toBe(false);
  };

  it('counts the arrays and objects outside strings, escaped quotes and backslashes included', () => {
    holds('{"a":[[],{}],"b":"[{["}', 4);
    // Strings that end in a backslash, and quotes escaped after one: ["\\","\"[[",{"k\\\"[":[1]},[]]
    holds(JSON.stringify(['\\', '"[[', { 'k\\"[': [1] }, []]), 4);
    holds('"[[[[[["', 0);
    holds(`[${empties(1000)}]`, 1001);
    holds(`["${'['.repeat(5000)}", ${empties(100)}, "${'{'.repeat(5000)}"]`, 101);
  });

  it('is decided by a body’s first limit + 1 arrays, whatever follows', () => {
    expect(hasMoreContainers(`[${empties(100)}] !!! "unterminated`, 100)).toBe(true);
    expect(hasMoreContainers(`[${empties(99)}] !!! "unterminated [[[[`, 100)).toBe(false);
  });
});

describe('hasMoreStrings', () => {
  // Exactly `n` strings: more than n − 1, not more than n.
  const holds = (text: string, n: number) => {
    expect(hasMoreStrings(text, n - 1), `more than ${n - 1}`).toBe(true);
    expect(hasMoreStrings(text, n), `more than ${n}`).toBe(false);
  };

  it('counts keys and string values once each, escaped quotes and backslashes included', () => {
    holds('{"a":["x","y"],"b":{}}', 4);
    const tricky = { 'k\\"': ['\\', '"', '\\"\\', { '': '""""' }], n: 1 };
    expect(stringsIn(tricky)).toBe(7);
    holds(JSON.stringify(tricky), 7);
    // 3,000 escaped quotes in one string: 6,002 `"` in the text, 1 string.
    holds(JSON.stringify('"'.repeat(3000)), 1);
    holds(`{${keys(1000)}}`, 1000);
    holds(`[${strings(5000)}]`, 5000);
    holds('[1, 2, 3]', 0);
  });

  it('is decided by a body’s first limit + 1 strings, whatever follows', () => {
    expect(hasMoreStrings(`[${strings(100)}] !!! "unterminated`, 100)).toBe(true);
    expect(hasMoreStrings(`[${strings(99)}] !!! "unterminated`, 100)).toBe(false);
  });
});

describe('InputShape.arraysPerSample', () => {
  it('is 1 flat and 1 + C + C·H nested [C, H, W]', () => {
    expect(new InputShape([64]).arraysPerSample).toBe(1);
    expect(new InputShape([1, 8, 8]).arraysPerSample).toBe(10);
    expect(new InputShape([3, 32, 32]).arraysPerSample).toBe(1 + 3 + 3 * 32);
    expect(new InputShape([2, 3, 4, 5]).arraysPerSample).toBe(1 + 2 + 2 * 3 + 2 * 3 * 4);
    // It is what the nested form of one sample holds.
    expect(hasMoreContainers(JSON.stringify(cnnSample(0)), 9)).toBe(true);
    expect(hasMoreContainers(JSON.stringify(cnnSample(0)), 10)).toBe(false);
  });
});

describe('bodies over the budget: the route’s 413, before parsing', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ models: ['digits', 'digits-cnn'] });
  });
  afterAll(async () => {
    await t.close();
  });
  const post = (url: string, payload: string | Buffer, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, payload, headers: { ...JSON_HEADERS, ...headers } });
  // digits [64], MAX_BATCH_SIZE 4096: in a body of 524,288 characters or more (4096 · 2 · 64),
  // 4096 flat rows of one array each, and the envelope's 1024 (infer); TF Serving's predict
  // allows each sample its named form's object too ({"input": row}): 4096 · 2 + 1024.
  const digitsBudget = (containers: number) =>
    `at most 4096 rows per request (MAX_BATCH_SIZE); the body holds more than ${containers} arrays and objects, more than 4096 samples of [64] and the request around them can`;
  const DIGITS_PREDICT = digitsBudget(9216);
  const DIGITS_INFER = digitsBudget(5120);

  it('predict: empty arrays and empty objects are a 413 BATCH_TOO_LARGE', async () => {
    for (const item of ['[]', '{}']) {
      const res = await post(
        '/v1/models/digits:predict',
        `{"instances":[${empties(200_000, item)}]}`,
      );
      const problem = expectProblem(res, 413, 'BATCH_TOO_LARGE', '/v1/models/digits:predict');
      expect(problem.errors).toEqual([{ path: 'body', message: DIGITS_PREDICT }]);
      expect(problem.detail).toBe(`body: ${DIGITS_PREDICT}`);
    }
  });

  it('Open Inference infer, JSON or a binary request’s JSON header: 413 BATCH_TOO_LARGE', async () => {
    const header = `{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[${empties(200_000)}]}]}`;
    const json = await post('/v2/models/digits/infer', header);
    expect(expectProblem(json, 413, 'BATCH_TOO_LARGE').errors).toEqual([
      { path: 'body', message: DIGITS_INFER },
    ]);
    const binary = binaryInfer(undefined, [], header);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: binary.payload,
      headers: binary.headers,
    });
    expectProblem(res, 413, 'BATCH_TOO_LARGE');
  });

  it('the budget is the addressed model’s: [1, 8, 8] rows may hold 10 arrays each', async () => {
    // 46,080 = 4096 · (10 + 1) + 1024, a named sample's object counted (the bodies are padded
    // past 524,288 characters): 41,002 arrays pass the CNN's budget (and the row count refuses
    // them after parsing), 47,002 do not.
    const pad = ' '.repeat(450_000);
    const under = await post(
      '/v1/models/digits-cnn:predict',
      `{"instances":[${empties(41_000)}${pad}]}`,
    );
    expect(expectProblem(under, 413, 'BATCH_TOO_LARGE').errors?.[0]?.path).toBe('instances');
    const over = await post(
      '/v1/models/digits-cnn:predict',
      `{"instances":[${empties(47_000)}${pad}]}`,
    );
    expect(expectProblem(over, 413, 'BATCH_TOO_LARGE').errors).toEqual([
      {
        path: 'body',
        message:
          'at most 4096 rows per request (MAX_BATCH_SIZE); the body holds more than 46080 arrays and objects, more than 4096 samples of [1, 8, 8] and the request around them can',
      },
    ]);
  });

  it(':recalibrate (JSON): bounded by the body’s length, a 400: its samples are missing values', async () => {
    // 1,000,000 samples are allowed, but 300,015 characters fit at most 300,015 / 128 = 2343
    // samples of 64 values: 2343 + 1024 arrays. More is no body too large but a malformed one.
    const body = `{"instances":[${empties(100_000)}]}`;
    expect(body).toHaveLength(300_015);
    const res = await post('/v1/models/digits:recalibrate', body, ADMIN);
    const problem = expectProblem(res, 400, 'INVALID_INPUT', '/v1/models/digits:recalibrate');
    expect(problem.detail).toBe(
      'body: more than 3367 arrays and objects in 300015 characters, more than any 2343 samples of [64] (the most that length fits) and the request around them hold: samples are missing values (counted before parsing)',
    );
  });

  it('is decided before parsing: a body that stops being JSON after its arrays is refused for them, not as malformed JSON', async () => {
    const res = await post('/v1/models/digits:predict', `{"instances":[${empties(6000)}]]]} !`);
    // 6000 rows are within MAX_BATCH_SIZE; 18,019 characters cannot hold them: a 400.
    expectProblem(res, 400, 'INVALID_INPUT');
    // The same body under the budget is parsed, and refused as malformed JSON.
    const parsed = await post('/v1/models/digits:predict', `{"instances":[${empties(1000)}]]]} !`);
    expectProblem(parsed, 400, 'INVALID_JSON');
  });

  it('an unknown model is held to the default budget: its 404 for any body a model could take', async () => {
    // 4,000 empty rows (a row count, not a shape, is judged before the model is looked up).
    const under = await post('/v1/models/nope:predict', `{"instances":[${empties(4_000)}]}`);
    expectProblem(under, 404, 'MODEL_NOT_FOUND');
    const over = await post('/v1/models/nope:predict', `{"instances":[${empties(65_537)}]}`);
    expect(expectProblem(over, 413, 'BODY_TOO_LARGE').detail).toBe(
      'the request body holds more than 65536 arrays and objects, the most this route reads',
    );
  });

  it('routes that read no rows allow 65,536, as a 413 BODY_TOO_LARGE; a path no route serves answers its 404 or 405 either way', async () => {
    const over = await post('/v1/models/digits/versions/1:activate', `[${empties(65_537)}]`, ADMIN);
    expect(expectProblem(over, 413, 'BODY_TOO_LARGE').detail).toBe(
      'the request body holds more than 65536 arrays and objects, the most this route reads',
    );
    // The body is refused unparsed there too, but the answer is the path's (the recalibration
    // attacker of 2026-12-04: a body's 400, 413 or 415 answered a path no route serves).
    expectProblem(await post('/no/such/route', `[${empties(65_537)}]`), 404, 'NOT_FOUND');
    expectProblem(await post('/no/such/route', `[${empties(65_535)}]`), 404, 'NOT_FOUND');
    expectProblem(await post('/no/such/route', '{"x":'), 404, 'NOT_FOUND');
    for (const method of ['DELETE', 'PUT'] as const) {
      const res = await t.app.inject({
        method,
        url: '/v1/models/digits:recalibrate',
        payload: 'x',
        headers: { ...JSON_HEADERS, ...ADMIN },
      });
      expectProblem(res, 405, 'METHOD_NOT_ALLOWED');
      expect(res.headers.allow).toBe('POST');
    }
  });

  // On the routes that read rows a 400, not a 413: the limit does not grow with the body.
  const STRINGS = `body: more than ${ENVELOPE_STRINGS} strings and keys: the rows' values are numbers, and the request around them (names, datatypes, parameters) holds at most ${ENVELOPE_STRINGS} (counted before parsing)`;
  const oipInput = `{"name":"input","shape":[1,64],"datatype":"FP32","data":[${digitsRow}]}`;

  it('keys and strings: an infer body’s parameters of 2,000 keys, or data of 4,000 strings, are a 400 before parsing', async () => {
    // Each body then stops being JSON: its refusal is the budget's, not a syntax error, so it was
    // never parsed.
    for (const tail of ['}', '} !!!']) {
      const params = await post(
        '/v2/models/digits/infer',
        `{"inputs":[${oipInput}],"parameters":{${keys(2000)}}${tail}`,
      );
      expect(expectProblem(params, 400, 'INVALID_INPUT').detail).toBe(STRINGS);
      const data = await post(
        '/v2/models/digits/infer',
        `{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[${strings(4000)}]}]${tail}`,
      );
      expect(expectProblem(data, 400, 'INVALID_INPUT').detail).toBe(STRINGS);
    }
    // A binary request's JSON header is held to the same budget.
    const binary = binaryInfer(
      undefined,
      [],
      `{"inputs":[${oipInput}],"parameters":{${keys(2000)}}}`,
    );
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: binary.payload,
      headers: binary.headers,
    });
    expect(expectProblem(res, 400, 'INVALID_INPUT').detail).toBe(STRINGS);
  });

  // Predict allows one key per sample more (TF Serving's named instances, {"input": sample}):
  // a body of n characters holds at most n / (2·64) digits samples.
  const predictStrings = (body: string) => {
    const budget = ENVELOPE_STRINGS + Math.floor(body.length / (2 * 64));
    return `body: more than ${budget} strings and keys: the rows' values are numbers, and the request around them (names, datatypes, parameters, an input name per sample) holds at most ${budget} (counted before parsing)`;
  };

  it('keys and strings: a predict row that is one object of 2,000 keys, or 4,000 strings, is a 400 before parsing', async () => {
    for (const tail of [']}', ']} !!!']) {
      const objectBody = `{"instances":[{${keys(2000)}}${tail}`;
      const object = await post('/v1/models/digits:predict', objectBody);
      expect(expectProblem(object, 400, 'INVALID_INPUT').detail).toBe(predictStrings(objectBody));
      const manyBody = `{"instances":[[${strings(4000)}]${tail}`;
      const many = await post('/v1/models/digits:predict', manyBody);
      expect(expectProblem(many, 400, 'INVALID_INPUT').detail).toBe(predictStrings(manyBody));
    }
    // Under the budget, the same shapes are parsed and refused by the schema and the handler.
    const parsed = await post('/v1/models/digits:predict', `{"instances":[{${keys(1100)}}]}`);
    expectProblem(parsed, 400, 'INVALID_INPUT');
  });

  it('routes that read no rows allow 16,384 strings', async () => {
    const over = await post('/v1/models/digits/versions/1:activate', `[${strings(16_385)}]`, ADMIN);
    expect(expectProblem(over, 413, 'BODY_TOO_LARGE').detail).toBe(
      'the request body holds more than 16384 strings and keys, the most this route reads',
    );
    expectProblem(await post('/no/such/route', `[${strings(16_385)}]`), 404, 'NOT_FOUND');
    expectProblem(await post('/no/such/route', `{${keys(16_384)}}`), 404, 'NOT_FOUND');
  });

  it('brackets in strings are not counted: a note of 70,000 "[" is parsed and named by zod', async () => {
    const res = await post(
      '/v1/models/digits/versions/1:activate',
      JSON.stringify({ note: '['.repeat(70_000) }),
      ADMIN,
    );
    const problem = expectProblem(res, 400, 'INVALID_INPUT');
    expect(problem.errors?.[0]?.path).toBe('note');
  });
});

describe('valid bodies at the limits pass', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ models: ['digits', 'digits-cnn'] });
  });
  afterAll(async () => {
    await t.close();
  });

  it('predict and infer: MAX_BATCH_SIZE nested [1, 8, 8] rows, with brackets in every string', async () => {
    const rows = cnnRows(t.config.MAX_BATCH_SIZE);
    const predict = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits-cnn:predict',
      payload: { instances: rows },
    });
    expect(predict.statusCode, predict.body.slice(0, 300)).toBe(200);
    expect(predict.json().predictions).toHaveLength(4096);
    const infer = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits-cnn/infer',
      payload: {
        id: '["'.repeat(128),
        // 150,000 characters, 50,000 of them escaped quotes: one string.
        parameters: { comment: '{["'.repeat(50_000) },
        inputs: [{ name: 'input', shape: [4096, 1, 8, 8], datatype: 'FP32', data: rows }],
        outputs: [{ name: 'label' }],
      },
    });
    expect(infer.statusCode, infer.body.slice(0, 300)).toBe(200);
    expect(infer.json().outputs[0].shape).toEqual([4096]);
  });

  it('infer: every tensor the schema allows, and parameters up to ENVELOPE_STRINGS strings', async () => {
    // 16 inputs and 16 outputs with parameters, and as many top-level parameters as the budget
    // leaves: exactly ENVELOPE_STRINGS strings.
    const tensors = Array.from({ length: 16 }, (_, i) => i);
    const body = {
      id: 'request-1',
      parameters: {} as Record<string, unknown>,
      inputs: tensors.map(() => ({
        name: 'input',
        shape: [1, 64],
        datatype: 'FP32',
        parameters: { p: 1 },
        data: digitsRow,
      })),
      outputs: tensors.map(() => ({ name: 'label', parameters: { binary_data: false } })),
    };
    let i = 0;
    while (stringsIn(body) + 2 <= ENVELOPE_STRINGS) body.parameters[`p${i}`] = `v${i++}`;
    if (stringsIn(body) < ENVELOPE_STRINGS) body.parameters[`p${i}`] = 1;
    expect(stringsIn(body)).toBe(ENVELOPE_STRINGS);
    const infer = (payload: unknown) =>
      t.app.inject({ method: 'POST', url: '/v2/models/digits/infer', payload: payload as object });
    const all = await infer(body);
    // Past the budget: the handler's 400 (a model has one input; each output is asked for once).
    expect(expectProblem(all, 400, 'INVALID_INPUT').detail).toMatch(/^(inputs|outputs)\[/);
    // One input and the model's three outputs, with the same parameters: answered.
    const one = {
      ...body,
      inputs: body.inputs.slice(0, 1),
      outputs: ['probabilities', 'logits', 'label'].map((name) => ({ name })),
    };
    const ok = await infer(one);
    expect(ok.statusCode, ok.body.slice(0, 300)).toBe(200);
    expect(ok.json().outputs).toHaveLength(3);
    // One string more is refused.
    const over = await infer({ ...body, parameters: { ...body.parameters, extra: 1 } });
    expectProblem(over, 400, 'INVALID_INPUT');
  });

  it('predict, columnar: MAX_BATCH_SIZE rows with the signature name', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: {
        signature_name: 'serving_default',
        inputs: Array.from({ length: t.config.MAX_BATCH_SIZE }, () => digitsRow),
      },
    });
    expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
    expect(res.json().outputs).toHaveLength(4096);
  });

  it(':recalibrate: the densest valid rows, where the body’s length bounds the budget', async () => {
    // 2000 nested rows of single digits: 147 characters and 10 arrays each, within the 10 per
    // 128 characters the length allows.
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits-cnn:recalibrate',
      headers: ADMIN,
      payload: { instances: cnnRows(2000), note: '['.repeat(1000) },
    });
    expect(res.statusCode, res.body.slice(0, 300)).toBe(201);
    expect(res.json()).toMatchObject({ model: 'digits-cnn', samples: 2000 });
  });
});
