/**
 * Predictions through HTTP: TF Serving REST predict (row and columnar formats), the Open
 * Inference Protocol infer route, and PyTorch's outputs of the digits-torch model through both.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { expectClose, maxAbsDiff } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import { BATCH_INDEPENDENCE_ATOL, FUSION_ATOL, OUTPUT_ATOL } from '../helpers/tolerances.js';
import {
  argmax,
  digitsRow,
  type InferResponse,
  inferBody,
  type PredictResponse,
  torchExpected,
} from './http-helpers.js';

let t: TestApp;
const test = digitsTestRows();
const expected = torchExpected();

beforeAll(async () => {
  t = await makeTestApp({ models: ['digits', 'digits-torch'] });
});
afterAll(async () => {
  await t.close();
});

const predict = (url: string, body: unknown) =>
  t.app.inject({ method: 'POST', url, payload: body as Record<string, unknown> });

/** Asserts each row is a probability distribution over the 10 digits. */
function expectDistributions(rows: number[][]): void {
  for (const row of rows) {
    expect(row).toHaveLength(10);
    for (const p of row) {
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThanOrEqual(1);
    }
    expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThanOrEqual(OUTPUT_ATOL);
  }
}

describe('TF Serving predict, row format (instances)', () => {
  it('answers predictions that are probability distributions, labels and model_version', async () => {
    const rows = test.x.slice(0, 5);
    const res = await predict('/v1/models/digits:predict', { instances: rows });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json<PredictResponse>();
    expect(Object.keys(body).sort()).toEqual(['labels', 'model_version', 'predictions']);
    expect(body.model_version).toBe(1);
    expect(body.predictions).toHaveLength(5);
    expectDistributions(body.predictions!);
    expect(body.labels).toEqual(body.predictions!.map((p) => String(argmax(p))));
  });

  it('names the version that computed the rows in the X-Model-Version header', async () => {
    const res = await predict('/v1/models/digits:predict', { instances: [digitsRow()] });
    expect(res.headers['x-model-version']).toBe('1');
  });

  it('accepts signature_name for compatibility', async () => {
    const res = await predict('/v1/models/digits:predict', {
      signature_name: 'serving_default',
      instances: [digitsRow()],
    });
    expect(res.statusCode).toBe(200);
  });

  it('serves a batch of one row', async () => {
    const res = await predict('/v1/models/digits:predict', { instances: [test.x[0]] });
    expect(res.statusCode).toBe(200);
    const body = res.json<PredictResponse>();
    expect(body.predictions).toHaveLength(1);
    expect(body.labels).toHaveLength(1);
    expectDistributions(body.predictions!);
  });

  it('classifies the 360 digits test rows with the test accuracy recorded in the metadata', async () => {
    const metadata = (await t.app.inject({ url: '/v1/models/digits/metadata' })).json<{
      metrics: { test: { accuracy: number; rows: number } };
    }>();
    const res = await predict('/v1/models/digits:predict', { instances: test.x });
    const body = res.json<PredictResponse>();
    const correct = body.labels!.filter((label, i) => label === String(test.y[i])).length;
    expect(metadata.metrics.test.rows).toBe(test.y.length);
    expect(correct / test.y.length).toBe(metadata.metrics.test.accuracy);
  });
});

describe('TF Serving predict, columnar format (inputs)', () => {
  it('answers outputs (not predictions) equal to the row format, with labels', async () => {
    const rows = test.x.slice(10, 17);
    const columnar = await predict('/v1/models/digits:predict', { inputs: rows });
    const rowFormat = await predict('/v1/models/digits:predict', { instances: rows });
    expect(columnar.statusCode).toBe(200);
    const c = columnar.json<PredictResponse>();
    const r = rowFormat.json<PredictResponse>();
    expect(Object.keys(c).sort()).toEqual(['labels', 'model_version', 'outputs']);
    expectDistributions(c.outputs!);
    expect(c.outputs).toEqual(r.predictions);
    expect(c.labels).toEqual(r.labels);
    expect(columnar.headers['x-model-version']).toBe('1');
  });
});

describe('explicit version routes', () => {
  it('/v1/models/{name}/versions/{version}:predict runs that version', async () => {
    const rows = test.x.slice(0, 3);
    const res = await predict('/v1/models/digits/versions/1:predict', { instances: rows });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-model-version']).toBe('1');
    const active = await predict('/v1/models/digits:predict', { instances: rows });
    expect(res.json()).toEqual(active.json());
  });

  it('/v2/models/{name}/versions/{version}/infer runs that version', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/versions/1/infer',
      payload: inferBody([digitsRow()]),
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-model-version']).toBe('1');
    expect(res.json<InferResponse>().model_version).toBe('1');
  });
});

describe('the PyTorch-trained digits-torch model', () => {
  it("TF predict gives PyTorch's probabilities within OUTPUT_ATOL and the same argmax on all 360 test rows", async () => {
    const res = await predict('/v1/models/digits-torch:predict', { instances: test.x });
    expect(res.statusCode).toBe(200);
    const body = res.json<PredictResponse>();
    expect(body.predictions).toHaveLength(expected.num_rows);
    expectClose(
      body.predictions!.flat(),
      expected.probabilities.data,
      OUTPUT_ATOL,
      'probabilities',
    );
    expect(body.predictions!.map(argmax)).toEqual(expected.predictions);
    expect(body.labels).toEqual(expected.predictions.map(String));
  });

  it("/v2 infer gives PyTorch's probabilities and logits within OUTPUT_ATOL and the same argmax on all 360 test rows", async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits-torch/infer',
      payload: inferBody(test.x, { outputs: ['probabilities', 'logits', 'label'] }),
    });
    expect(res.statusCode).toBe(200);
    const [probabilities, logits, label] = res.json<InferResponse>().outputs;
    expect(probabilities!.shape).toEqual([360, 10]);
    expectClose(
      probabilities!.data as number[],
      expected.probabilities.data,
      OUTPUT_ATOL,
      'probabilities',
    );
    expectClose(logits!.data as number[], expected.logits.data, OUTPUT_ATOL, 'logits');
    const rows = Array.from({ length: 360 }, (_, r) =>
      (probabilities!.data as number[]).slice(r * 10, r * 10 + 10),
    );
    expect(rows.map(argmax)).toEqual(expected.predictions);
    expect(label!.data).toEqual(expected.predictions.map(String));
  });

  it('?fused=false (the unfused reference path) gives the same probabilities within FUSION_ATOL', async () => {
    const fused = await predict('/v1/models/digits-torch:predict', { instances: test.x });
    const unfused = await predict('/v1/models/digits-torch:predict?fused=false', {
      instances: test.x,
    });
    expect(unfused.statusCode).toBe(200);
    const f = fused.json<PredictResponse>().predictions!.flat();
    const u = unfused.json<PredictResponse>().predictions!.flat();
    expectClose(u, f, FUSION_ATOL, 'unfused vs fused');
    expectClose(u, expected.probabilities.data, FUSION_ATOL, 'unfused vs PyTorch');
    expect(unfused.json<PredictResponse>().labels).toEqual(expected.predictions.map(String));
  });

  it('?fused=true is the default', async () => {
    const rows = test.x.slice(0, 4);
    const explicit = await predict('/v1/models/digits-torch:predict?fused=true', {
      instances: rows,
    });
    const implicit = await predict('/v1/models/digits-torch:predict', { instances: rows });
    expect(explicit.json()).toEqual(implicit.json());
  });
});

describe('batch independence through HTTP (eval mode: no batch statistics)', () => {
  it('every row of a 64-row batch equals the same row predicted alone within BATCH_INDEPENDENCE_ATOL', async () => {
    const rows = test.x.slice(100, 164);
    const batch = (
      await predict('/v1/models/digits-torch:predict', { instances: rows })
    ).json<PredictResponse>();
    let worst = 0;
    for (let r = 0; r < rows.length; r++) {
      const alone = (
        await predict('/v1/models/digits-torch:predict', { instances: [rows[r]] })
      ).json<PredictResponse>();
      worst = Math.max(worst, maxAbsDiff(alone.predictions![0]!, batch.predictions![r]!));
      expect(alone.labels![0]).toBe(batch.labels![r]);
    }
    expect(worst).toBeLessThanOrEqual(BATCH_INDEPENDENCE_ATOL);
  });

  it('the same holds for /v2 infer logits', async () => {
    const rows = test.x.slice(200, 264);
    const infer = async (rs: number[][]) =>
      (
        await t.app.inject({
          method: 'POST',
          url: '/v2/models/digits/infer',
          payload: inferBody(rs, { outputs: ['logits'] }),
        })
      ).json<InferResponse>().outputs[0]!.data as number[];
    const batch = await infer(rows);
    for (const r of [0, 1, 31, 32, 63]) {
      expectClose(
        await infer([rows[r]!]),
        batch.slice(r * 10, r * 10 + 10),
        BATCH_INDEPENDENCE_ATOL,
        `row ${r}`,
      );
    }
  });
});
