/**
 * TF Serving's named forms of predict (api_rest.md): `instances` as a list of objects keyed by
 * input name, `inputs` as a map of input name to tensor. The model's one input is "input" (as in
 * its metadata's signature_def and the Open Inference Protocol routes); the answers are those of
 * the plain forms, bit for bit: `predictions` for the row format, `outputs` for the columnar one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, digitsImage as image } from '../helpers/digits.js';
import { digitsRow, expectInvalid, type PredictResponse } from './http-helpers.js';

let t: TestApp;
const { x } = digitsTestRows();

beforeAll(async () => {
  t = await makeTestApp({ models: ['digits', 'digits-cnn-torch'], env: { MAX_BATCH_SIZE: '600' } });
});
afterAll(async () => {
  await t.close();
});

const PREDICT = '/v1/models/digits:predict';
const CNN = '/v1/models/digits-cnn-torch:predict';
const post = (url: string, body: unknown) =>
  t.app.inject({ method: 'POST', url, payload: body as Record<string, unknown> });
const ok = async (url: string, body: unknown) => {
  const res = await post(url, body);
  expect(res.statusCode, res.body).toBe(200);
  return res.json<PredictResponse>();
};
const UNKNOWN_X = 'unknown input "x"; the model\'s input is "input"';

describe('the named forms answer as the plain ones, bit for bit', () => {
  it('row format: instances of {"input": row} answer `predictions` and labels equal to plain rows', async () => {
    const rows = x.slice(0, 20);
    const plain = await ok(PREDICT, { instances: rows });
    const named = await ok(PREDICT, { instances: rows.map((input) => ({ input })) });
    expect(Object.keys(named).sort()).toEqual(['labels', 'model_version', 'predictions']);
    expect(named).toEqual(plain);
  });

  it('columnar format: inputs {"input": rows} answers `outputs` equal to plain inputs', async () => {
    const rows = x.slice(0, 20);
    const plain = await ok(PREDICT, { inputs: rows });
    const named = await ok(PREDICT, { inputs: { input: rows } });
    expect(Object.keys(named).sort()).toEqual(['labels', 'model_version', 'outputs']);
    expect(named).toEqual(plain);
    // The single output tensor is the plain list, its name omitted (api_rest.md).
    expect(Array.isArray(named.outputs)).toBe(true);
  });

  it('a [1, 8, 8] model takes nested and flat samples in both named forms', async () => {
    const rows = x.slice(0, 8);
    const plain = await ok(CNN, { instances: rows });
    const nested = await ok(CNN, { instances: rows.map((r) => ({ input: image(r) })) });
    expect(nested).toEqual(plain);
    const columns = await ok(CNN, { inputs: { input: rows.map(image) } });
    expect(columns.outputs).toEqual(plain.predictions);
    expect(await ok(CNN, { inputs: { input: rows } })).toEqual(columns);
  });

  it('the versioned route, signature_name, and MAX_BATCH_SIZE rows (a 413 past it, named where the rows are)', async () => {
    const rows = Array.from({ length: 600 }, (_, i) => x[i % x.length]!);
    const named = await ok('/v1/models/digits/versions/1:predict', {
      signature_name: 'serving_default',
      instances: rows.map((input) => ({ input })),
    });
    expect(named).toEqual(await ok(PREDICT, { instances: rows }));
    const over = await post(PREDICT, { inputs: { input: [...rows, rows[0]] } });
    expectInvalid(
      over,
      [{ path: 'inputs.input', message: 'at most 600 rows per request (MAX_BATCH_SIZE), got 601' }],
      'BATCH_TOO_LARGE',
      413,
    );
  });
});

describe('what the named forms refuse', () => {
  it('another input name is a 400 naming it and the model’s input, in both forms', async () => {
    expectInvalid(await post(PREDICT, { instances: [{ x: digitsRow() }] }), [
      { path: 'instances[0].x', message: UNKNOWN_X },
    ]);
    expectInvalid(await post(PREDICT, { inputs: { x: [digitsRow()] } }), [
      { path: 'inputs.x', message: UNKNOWN_X },
    ]);
    expectInvalid(await post(PREDICT, { instances: [{ input: digitsRow(), x: digitsRow() }] }), [
      { path: 'instances[0].x', message: UNKNOWN_X },
    ]);
    expectInvalid(await post(PREDICT, { inputs: {} }), [
      {
        path: 'inputs',
        message: 'expected {"input": [sample, …]}: the model\'s one input is "input"',
      },
    ]);
    expectInvalid(await post(PREDICT, { instances: [{}] }), [
      {
        path: 'instances[0]',
        message: 'expected {"input": sample}: the model\'s one input is "input"',
      },
    ]);
  });

  it('features named one by one (pandas’ records) are one error per row, pointing at the order', async () => {
    // Named as the model's metadata lists its features, in order.
    const metadata = await t.app.inject({ method: 'GET', url: '/v1/models/digits/metadata' });
    const names: string[] = metadata.json().training.feature_names;
    expect(names).toHaveLength(64);
    const named = Object.fromEntries(digitsRow().map((v, i) => [names[i], v]));
    const features = '"p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", … and 56 more';
    const why = `an object names the model's one input "input", not its features (${features}); send a row as an array of its feature values in the model's order, which its metadata lists when it records them (training.feature_names)`;
    expectInvalid(await post(PREDICT, { instances: [named, named] }), [
      { path: 'instances[0]', message: `expected {"input": sample}: ${why}` },
      { path: 'instances[1]', message: `expected {"input": sample}: ${why}` },
    ]);
    const columns = Object.fromEntries(Object.entries(named).map(([k, v]) => [k, [v, v]]));
    expectInvalid(await post(PREDICT, { inputs: columns }), [
      { path: 'inputs', message: `expected {"input": [sample, …]}: ${why}` },
    ]);
  });

  it('mixed instances (some objects, some arrays) are a 400 at each one unlike the first, as TF Serving', async () => {
    const row = digitsRow();
    expectInvalid(await post(PREDICT, { instances: [{ input: row }, row, { input: row }, row] }), [
      {
        path: 'instances[1]',
        message:
          'expected {"input": sample}, as instances[0] is (every one a sample, or every one {"input": sample})',
      },
      {
        path: 'instances[3]',
        message:
          'expected {"input": sample}, as instances[0] is (every one a sample, or every one {"input": sample})',
      },
    ]);
    expectInvalid(await post(PREDICT, { instances: [row, { input: row }] }), [
      {
        path: 'instances[1]',
        message:
          'expected an array of numbers (one row), as instances[0] is (every one a sample, or every one {"input": sample})',
      },
    ]);
  });

  it('a named sample of the wrong shape is named where it stands', async () => {
    const short = digitsRow().slice(0, 63);
    expectInvalid(await post(PREDICT, { instances: [{ input: digitsRow() }, { input: short }] }), [
      { path: 'instances[1].input', message: 'expected 64 values, got 63' },
    ]);
    expectInvalid(await post(PREDICT, { inputs: { input: [digitsRow(), short] } }), [
      { path: 'inputs.input[1]', message: 'expected 64 values, got 63' },
    ]);
    expectInvalid(await post(PREDICT, { instances: [{ input: 5 }] }), [
      { path: 'instances[0].input', message: 'expected an array of numbers (one row)' },
    ]);
    expectInvalid(await post(PREDICT, { inputs: { input: [1, 2] } }), [
      { path: 'inputs.input[0]', message: 'expected an array of numbers (one row)' },
      { path: 'inputs.input[1]', message: 'expected an array of numbers (one row)' },
    ]);
    expectInvalid(await post(PREDICT, { inputs: { input: 'rows' } }), [
      { path: 'inputs.input', message: 'expected an array of rows' },
    ]);
    expectInvalid(await post(PREDICT, { inputs: { input: [] } }), [
      { path: 'inputs.input', message: 'at least one row is required' },
    ]);
    // `instances` has no map form: TF Serving's row format is a list.
    const res = await post(PREDICT, { instances: { input: [digitsRow()] } });
    expect(res.statusCode, res.body).toBe(400);
  });
});

describe('the JSON budget counts a named sample’s object and key', () => {
  it('4,096 named instances (the default MAX_BATCH_SIZE) are parsed and answered', async () => {
    const app = await makeTestApp({ models: ['digits'] });
    try {
      const rows = Array.from({ length: 4096 }, (_, i) => x[i % x.length]!);
      const res = await app.app.inject({
        method: 'POST',
        url: PREDICT,
        payload: { instances: rows.map((input) => ({ input })) },
      });
      expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
      expect(res.json<PredictResponse>().predictions).toHaveLength(4096);
    } finally {
      await app.close();
    }
  });
});
