/**
 * GET /v1/models/{name}/versions/{v}/model.onnx: the version's fused plan as an ONNX file that
 * onnxruntime runs to the same numbers the service answers over HTTP (OIP `logits`, TF Serving
 * `predictions` = probabilities); unknown or failed models and versions are 404 problems.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportModelOnnx } from '../../src/service/index.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { bundledVersionDir, copyBundledModel } from '../helpers/bundled-models.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import { onnxSession, runOnnx } from '../helpers/onnx-runtime.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';
import { expectInvalid, expectProblem } from './http-helpers.js';

const rows = digitsTestRows().x.slice(0, 16);
const URL = '/v1/models/digits/versions/1/model.onnx';
let t: TestApp;

/** digits, plus `regressor`: digits/1 re-labelled as a 10-output regression model. */
function repository(): string {
  const root = makeRepository(['digits']);
  const dir = join(root, 'regressor', '1');
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.name = 'regressor';
  config.task = 'regression';
  delete config.labels;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return root;
}

beforeAll(async () => {
  t = await makeTestApp({ repository: repository() });
});
afterAll(async () => {
  await t.close();
});

describe('GET …/model.onnx', () => {
  it('answers the export as an octet-stream attachment that onnxruntime runs to the OIP logits', async () => {
    const res = await t.app.inject({ method: 'GET', url: URL });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['content-disposition']).toBe('attachment; filename="digits-1.onnx"');
    expect(res.headers['x-model-version']).toBe('1');
    const bytes = res.rawPayload;
    expect(
      Buffer.compare(
        bytes,
        Buffer.from(
          exportModelOnnx(t.registry, {
            model: 'digits',
            version: 1,
            producerVersion: '0.0.0-test',
          }).bytes,
        ),
      ),
    ).toBe(0);

    const session = await onnxSession(bytes);
    expect(session.inputNames).toEqual(['input']);
    expect(session.outputNames).toEqual(['logits']);
    const infer = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/versions/1/infer',
      payload: {
        inputs: [{ name: 'input', shape: [rows.length, 64], datatype: 'FP32', data: rows.flat() }],
        outputs: [{ name: 'logits' }],
      },
    });
    const logits = infer.json<{ outputs: { data: number[] }[] }>().outputs[0]!.data;
    const onnx = await runOnnx(session, Float32Array.from(rows.flat()), rows.length, 64);
    expectClose(onnx.logits!, logits, OUTPUT_ATOL, 'logits');
  });

  it('?probabilities=true adds the softmax output, equal to the TF Serving predictions', async () => {
    const res = await t.app.inject({ method: 'GET', url: `${URL}?probabilities=true` });
    expect(res.statusCode, res.body).toBe(200);
    const session = await onnxSession(res.rawPayload);
    expect(session.outputNames).toEqual(['logits', 'probabilities']);
    const predict = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:predict',
      payload: { instances: rows },
    });
    const probabilities = predict.json<{ predictions: number[][] }>().predictions.flat();
    const onnx = await runOnnx(session, Float32Array.from(rows.flat()), rows.length, 64);
    expectClose(onnx.probabilities!, probabilities, OUTPUT_ATOL, 'probabilities');
  });

  it('a regression model exports its raw outputs as "predictions"; probabilities=true is a 400', async () => {
    const res = await t.app.inject({
      method: 'GET',
      url: '/v1/models/regressor/versions/1/model.onnx',
    });
    expect(res.statusCode, res.body).toBe(200);
    expect((await onnxSession(res.rawPayload)).outputNames).toEqual(['predictions']);
    expectInvalid(
      await t.app.inject({
        method: 'GET',
        url: '/v1/models/regressor/versions/1/model.onnx?probabilities=true',
      }),
      [{ path: 'probabilities', message: /^only classification models have probabilities/ }],
    );
  });

  it('unknown model or version: 404 problems; a malformed version or query: 400', async () => {
    expectProblem(
      await t.app.inject({ method: 'GET', url: '/v1/models/nope/versions/1/model.onnx' }),
      404,
      'MODEL_NOT_FOUND',
      '/v1/models/nope/versions/1/model.onnx',
    );
    expectProblem(
      await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions/7/model.onnx' }),
      404,
      'VERSION_NOT_FOUND',
    );
    expectProblem(
      await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions/01/model.onnx' }),
      400,
      'INVALID_INPUT',
    );
    expectProblem(
      await t.app.inject({ method: 'GET', url: `${URL}?probabilities=yes` }),
      400,
      'INVALID_INPUT',
    );
    expectProblem(
      await t.app.inject({ method: 'GET', url: `${URL}?format=onnx` }),
      400,
      'INVALID_INPUT',
    );
  });

  it('a version that failed to load: 404 naming the reason', async () => {
    const root = makeRepository(['digits']);
    copyBundledModel('digits', root, { version: 2 });
    const weights = join(root, 'digits', '2', 'model.safetensors');
    writeFileSync(weights, readFileSync(weights).subarray(0, 100));
    const broken = await makeTestApp({ repository: root });
    try {
      const body = expectProblem(
        await broken.app.inject({ method: 'GET', url: '/v1/models/digits/versions/2/model.onnx' }),
        404,
        'VERSION_NOT_FOUND',
      );
      expect(body.error).toMatch(/failed to load/);
    } finally {
      await broken.close();
    }
  });
});
