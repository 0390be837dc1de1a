/**
 * The Open Inference Protocol v2 REST API (KServe, Triton): server and model metadata, health and
 * readiness, infer with flat and nested data, output selection, request ids, errors.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';
import {
  digitsRow,
  expectInvalid,
  expectProblem,
  type InferResponse,
  inferBody,
} from './http-helpers.js';

let t: TestApp;
const rows = digitsTestRows().x.slice(0, 3);

beforeAll(async () => {
  t = await makeTestApp({ models: ['digits'] });
});
afterAll(async () => {
  await t.close();
});

const get = (url: string) => t.app.inject({ method: 'GET', url });
const infer = (payload: unknown, url = '/v2/models/digits/infer') =>
  t.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });

describe('server endpoints', () => {
  it('GET /v2 answers the server metadata: name, version, extensions', async () => {
    const res = await get('/v2');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      name: 'normserve',
      version: '0.0.0-test',
      extensions: ['binary_tensor_data', 'classification'],
    });
  });

  it('GET /v2/health/live answers {"live": true}', async () => {
    const res = await get('/v2/health/live');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ live: true });
  });

  it('GET /v2/health/ready answers {"ready": true} when every model has an available version', async () => {
    const res = await get('/v2/health/ready');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ready: true });
  });

  it('GET /v2/health/ready answers 503 {"ready": false} with an empty repository', async () => {
    const repository = makeRepository([]);
    const empty = await makeTestApp({ repository });
    try {
      const res = await empty.app.inject({ url: '/v2/health/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ ready: false });
      expect((await empty.app.inject({ url: '/v2/health/live' })).statusCode).toBe(200);
    } finally {
      await empty.close();
      rmSync(repository, { recursive: true, force: true });
    }
  });
});

describe('model metadata', () => {
  const metadata = {
    name: 'digits',
    versions: ['1'],
    platform: 'normserve',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 64] }],
    outputs: [
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 10] },
      { name: 'logits', datatype: 'FP32', shape: [-1, 10] },
      { name: 'label', datatype: 'BYTES', shape: [-1] },
    ],
  };

  it('GET /v2/models/{name} names the input and outputs with datatypes and -1 batch dimensions', async () => {
    const res = await get('/v2/models/digits');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(metadata);
  });

  it('GET /v2/models/{name}/versions/{version} describes that version', async () => {
    const res = await get('/v2/models/digits/versions/1');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(metadata);
  });

  it('an unknown model is a 404 MODEL_NOT_FOUND, an unknown version a 404 VERSION_NOT_FOUND', async () => {
    expectProblem(await get('/v2/models/nope'), 404, 'MODEL_NOT_FOUND', '/v2/models/nope');
    expectProblem(await get('/v2/models/digits/versions/7'), 404, 'VERSION_NOT_FOUND');
  });
});

describe('model readiness', () => {
  it('GET /v2/models/{name}/ready answers 200 {"name", "ready": true}', async () => {
    const res = await get('/v2/models/digits/ready');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'digits', ready: true });
  });

  it('GET /v2/models/{name}/versions/{version}/ready answers 200 for an available version', async () => {
    const res = await get('/v2/models/digits/versions/1/ready');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'digits', ready: true });
  });

  it('readiness of an unknown model or version is a 404 problem', async () => {
    expectProblem(await get('/v2/models/nope/ready'), 404, 'MODEL_NOT_FOUND');
    expectProblem(await get('/v2/models/digits/versions/2/ready'), 404, 'VERSION_NOT_FOUND');
  });
});

describe('infer', () => {
  it('answers every output when none is named (the protocol), probabilities first: FP32 [N, 10] summing to 1 per row', async () => {
    const res = await infer(inferBody(rows));
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-model-version']).toBe('1');
    const body = res.json<InferResponse>();
    expect(body.model_name).toBe('digits');
    expect(body.model_version).toBe('1');
    expect(body).not.toHaveProperty('id');
    expect(body.outputs.map((o) => [o.name, o.datatype, o.shape])).toEqual([
      ['probabilities', 'FP32', [3, 10]],
      ['logits', 'FP32', [3, 10]],
      ['label', 'BYTES', [3]],
    ]);
    const named = await infer(inferBody(rows, { outputs: ['probabilities', 'logits', 'label'] }));
    expect(body).toEqual(named.json());
    const [out] = body.outputs;
    expect(out!.data).toHaveLength(30);
    for (let r = 0; r < 3; r++) {
      const sum = (out!.data as number[]).slice(r * 10, r * 10 + 10).reduce((a, b) => a + b, 0);
      expect(Math.abs(sum - 1)).toBeLessThanOrEqual(OUTPUT_ATOL);
    }
  });

  it('nested data ([N][features]) gives the same outputs as flat data', async () => {
    const flat = await infer(inferBody(rows, { outputs: ['logits'] }));
    const nested = await infer(inferBody(rows, { flat: false, outputs: ['logits'] }));
    expect(nested.statusCode).toBe(200);
    expect(nested.json()).toEqual(flat.json());
  });

  it('gives the same probabilities and labels as TF Serving predict', async () => {
    const v2 = (
      await infer(inferBody(rows, { outputs: ['probabilities', 'label'] }))
    ).json<InferResponse>();
    const tf = (
      await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits:predict',
        payload: { instances: rows },
      })
    ).json<{ predictions: number[][]; labels: string[] }>();
    expect(v2.outputs[0]!.data).toEqual(tf.predictions.flat());
    expect(v2.outputs[1]!.data).toEqual(tf.labels);
  });

  it('returns the requested outputs in the requested order: logits, label, probabilities', async () => {
    const res = await infer(inferBody(rows, { outputs: ['logits', 'label', 'probabilities'] }));
    expect(res.statusCode).toBe(200);
    const [logits, label, probabilities] = res.json<InferResponse>().outputs;
    expect(logits).toMatchObject({ name: 'logits', datatype: 'FP32', shape: [3, 10] });
    expect(label).toMatchObject({ name: 'label', datatype: 'BYTES', shape: [3] });
    expect(probabilities).toMatchObject({ name: 'probabilities', shape: [3, 10] });
    const softmax = [0, 1, 2].flatMap((r) => {
      const z = (logits!.data as number[]).slice(r * 10, r * 10 + 10);
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    });
    expectClose(probabilities!.data as number[], softmax, OUTPUT_ATOL, 'softmax(logits)');
    expect(label!.data.every((l) => typeof l === 'string' && /^[0-9]$/.test(l))).toBe(true);
  });

  it('returns only the label when only the label is requested', async () => {
    const res = await infer(inferBody([digitsRow()], { outputs: ['label'] }));
    const outputs = res.json<InferResponse>().outputs;
    expect(outputs).toHaveLength(1);
    expect(outputs[0]).toMatchObject({ name: 'label', datatype: 'BYTES', shape: [1] });
  });

  it('echoes the request id', async () => {
    const res = await infer(inferBody([digitsRow()], { id: 'request-42' }));
    expect(res.json<InferResponse>().id).toBe('request-42');
  });

  it("serves the body KServe's Python client sends (InferRequest.to_rest(): id, model_name, inputs); another model_name than the URL's is a 400 naming it", async () => {
    // kserve python/kserve/kserve/protocol/infer_type.py: {"id", "model_name", "inputs"}, always.
    const kserve = { id: 'a1', model_name: 'digits', ...inferBody([digitsRow()]) };
    const res = await infer(kserve);
    expect(res.statusCode).toBe(200);
    expect(res.json<InferResponse>()).toMatchObject({ model_name: 'digits', id: 'a1' });
    expectInvalid(await infer({ ...kserve, model_name: 'digits-cnn' }), [
      {
        path: 'model_name',
        message: 'names the model "digits-cnn", but the URL names "digits"',
      },
    ]);
  });
});

describe('infer errors are problems with an `error` string', () => {
  const tensor = (over: Record<string, unknown>) => ({
    inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', data: digitsRow(), ...over }],
  });

  it('a datatype other than FP32 is a 400 naming inputs[0].datatype', async () => {
    expectInvalid(await infer(tensor({ datatype: 'FP64' })), [
      { path: 'inputs[0].datatype', message: 'expected "FP32", got "FP64"' },
    ]);
  });

  it('a shape with the wrong feature count is a 400 naming inputs[0].shape', async () => {
    expectInvalid(await infer(tensor({ shape: [1, 63] })), [
      { path: 'inputs[0].shape', message: 'expected [N, 64], got [1, 63]' },
    ]);
  });

  it('a shape of rank 1 or 3 is a 400 naming inputs[0].shape', async () => {
    expectInvalid(await infer(tensor({ shape: [64] })), [
      { path: 'inputs[0].shape', message: 'expected [N, 64], got [64]' },
    ]);
    expectInvalid(await infer(tensor({ shape: [1, 64, 1] })), [
      { path: 'inputs[0].shape', message: 'expected [N, 64], got [1, 64, 1]' },
    ]);
  });

  it('zero rows is a 400', async () => {
    expectInvalid(await infer(tensor({ shape: [0, 64], data: [] })), [
      { path: 'inputs[0].shape', message: 'at least one row is required' },
    ]);
  });

  it('data whose length does not match the shape is a 400 naming inputs[0].data', async () => {
    expectInvalid(await infer(tensor({ shape: [2, 64] })), [
      {
        path: 'inputs[0].data',
        // tensor() sends one row's 64 numbers.
        message: 'expected 128 numbers (flat) or 2 rows of 64 for shape [2, 64], got 64 numbers',
      },
    ]);
    // What was sent is counted as rows, or as values with the arrays among them.
    expectInvalid(await infer(tensor({ data: [digitsRow(), digitsRow()] })), [
      {
        path: 'inputs[0].data',
        message: 'expected 64 numbers (flat) or 1 row of 64 for shape [1, 64], got 2 rows',
      },
    ]);
    expectInvalid(await infer(tensor({ data: [digitsRow(), 1, 2] })), [
      {
        path: 'inputs[0].data',
        message:
          'expected 64 numbers (flat) or 1 row of 64 for shape [1, 64], got 3 values, 1 of them an array',
      },
    ]);
    expectInvalid(await infer(tensor({ data: digitsRow().slice(1) })), [
      { path: 'inputs[0].data', message: /^expected 64 numbers/ },
    ]);
  });

  it('a nested row of the wrong width is a 400 naming that row', async () => {
    expectInvalid(await infer(tensor({ shape: [2, 64], data: [digitsRow(), [1, 2, 3]] })), [
      { path: 'inputs[0].data[1]', message: 'expected 64 values, got 3' },
    ]);
  });

  it('a non-number in data is a 400 naming its index, flat or nested', async () => {
    const flat = digitsRow();
    (flat as unknown[])[17] = 'x';
    expectInvalid(await infer(tensor({ data: flat })), [
      { path: 'inputs[0].data[17]', message: 'expected a finite number, got "x"' },
    ]);
    expectInvalid(await infer(tensor({ data: [flat] })), [
      { path: 'inputs[0].data[0][17]', message: 'expected a finite number, got "x"' },
    ]);
  });

  it('an unknown output name is a 400 naming outputs[i].name and the model outputs', async () => {
    const res = await infer(inferBody([digitsRow()], { outputs: ['logits', 'embeddings'] }));
    expectInvalid(res, [
      {
        path: 'outputs[1].name',
        message: 'unknown output "embeddings"; this model has probabilities, logits, label',
      },
    ]);
  });

  it('an input name other than "input" is a 400 naming inputs[0].name', async () => {
    expectInvalid(await infer(tensor({ name: 'pixels' })), [
      { path: 'inputs[0].name', message: `unknown input "pixels"; the model's input is "input"` },
    ]);
  });

  it('two input tensors are a 400', async () => {
    const body = tensor({});
    body.inputs.push(body.inputs[0]!);
    expectInvalid(await infer(body), [
      { path: 'inputs', message: 'this model takes exactly one input tensor ("input"), got 2' },
    ]);
  });

  it('no input tensor is a 400', async () => {
    expectInvalid(await infer({ inputs: [] }), [
      { path: 'inputs', message: 'at least one input tensor is required' },
    ]);
  });

  it('an unknown model is a 404 MODEL_NOT_FOUND', async () => {
    const res = await infer(inferBody([digitsRow()]), '/v2/models/nope/infer');
    const body = expectProblem(res, 404, 'MODEL_NOT_FOUND', '/v2/models/nope/infer');
    expect(body.error).toBe('model "nope" is not in the repository');
  });

  it('an unknown version is a 404 VERSION_NOT_FOUND', async () => {
    const res = await infer(inferBody([digitsRow()]), '/v2/models/digits/versions/3/infer');
    const body = expectProblem(res, 404, 'VERSION_NOT_FOUND');
    expect(body.error).toBe('model "digits" has no version 3');
  });
});
