/**
 * A PyTorch-trained CNN (test/fixtures/torch-model/digits-cnn-torch, input [1, 8, 8]) served by
 * both APIs: instances nested [1][8][8] or flat 64, OIP tensors [N, 1, 8, 8] or [N, 64],
 * probabilities within 1e-5 of PyTorch's, metadata showing the shape and the folded BatchNorms,
 * the ONNX export running in onnxruntime, errors naming the offending place.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelDirectory } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows, digitsImage as image } from '../helpers/digits.js';
import { onnxSession, runOnnx } from '../helpers/onnx-runtime.js';
import { FUSION_ATOL, OUTPUT_ATOL } from '../helpers/tolerances.js';
import { expectInvalid, type InferResponse, type PredictResponse } from './http-helpers.js';

interface CnnExpected {
  labels: number[];
  probabilities: { data: number[] };
  logits: { data: number[] };
  logits_float64: { data: number[] };
  predictions: number[];
  accuracy: number;
}

const torch = JSON.parse(
  readFileSync('test/fixtures/torch-model/cnn-expected.json', 'utf8'),
) as CnnExpected;
const { x } = digitsTestRows();

let t: TestApp;
beforeAll(async () => {
  t = await makeTestApp({ models: ['digits-cnn-torch'] });
});
afterAll(async () => {
  await t.close();
});

const PREDICT = '/v1/models/digits-cnn-torch:predict';
const INFER = '/v2/models/digits-cnn-torch/infer';
const post = (url: string, payload: unknown) =>
  t.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });

describe('predictions match PyTorch', () => {
  it('TF instances nested [1][8][8]: probabilities within 1e-5, labels = argmax', async () => {
    const res = await post(PREDICT, { instances: x.map(image) });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as PredictResponse;
    expectClose(body.predictions!.flat(), torch.probabilities.data, OUTPUT_ATOL, 'probabilities');
    expect(body.labels).toEqual(torch.predictions.map(String));
    const correct = body.labels!.filter((l, i) => Number(l) === torch.labels[i]).length;
    expect(correct / x.length).toBe(torch.accuracy);
  });

  it('TF instances flat (64 numbers) and the columnar inputs give the same numbers', async () => {
    const nested = (await post(PREDICT, { instances: x.slice(0, 20).map(image) })).json();
    const flat = (await post(PREDICT, { instances: x.slice(0, 20) })).json();
    const columnar = (await post(PREDICT, { inputs: x.slice(0, 20).map(image) })).json();
    expect(flat.predictions).toEqual(nested.predictions);
    expect(columnar.outputs).toEqual(nested.predictions);
  });

  it('OIP [N, 1, 8, 8] (flat or nested data) and [N, 64]: probabilities and logits within 1e-5', async () => {
    const n = x.length;
    const bodies = [
      { shape: [n, 1, 8, 8], data: x.flat() },
      { shape: [n, 1, 8, 8], data: x.map(image) },
      { shape: [n, 64], data: x },
    ];
    for (const tensor of bodies) {
      const res = await post(INFER, {
        inputs: [{ name: 'input', datatype: 'FP32', ...tensor }],
        outputs: [{ name: 'probabilities' }, { name: 'logits' }, { name: 'label' }],
      });
      expect(res.statusCode, res.body).toBe(200);
      const [probabilities, logits, label] = (res.json() as InferResponse).outputs;
      expect(probabilities!.shape).toEqual([n, 10]);
      expectClose(probabilities!.data as number[], torch.probabilities.data, OUTPUT_ATOL, 'p');
      // PyTorch's float32 logits carry its own rounding; the float64 evaluation of the same
      // checkpoint is the tighter reference.
      expectClose(logits!.data as number[], torch.logits_float64.data, OUTPUT_ATOL, 'logits');
      expect(label!.data).toEqual(torch.predictions.map(String));
    }
  });

  it(`fused and unfused agree within ${FUSION_ATOL} on logits`, async () => {
    const model = await openModelDirectory('test/fixtures/torch-model/digits-cnn-torch/1');
    const fused = model.predict(x, { fused: true }).outputs;
    const unfused = model.predict(x.map(image), { fused: false }).outputs;
    expectClose(fused, unfused, FUSION_ATOL, 'fused vs unfused logits');
    expectClose(unfused, torch.logits_float64.data, OUTPUT_ATOL, 'unfused vs PyTorch');
  });
});

describe('metadata shows the shape and what was folded', () => {
  it('TF metadata: input_shape [1, 8, 8], nested layers with their fates', async () => {
    const m = (await t.app.inject({ url: '/v1/models/digits-cnn-torch/metadata' })).json();
    expect(m.input_shape).toEqual([1, 8, 8]);
    expect(m.output_shape).toEqual([10]);
    expect(m.folded_batchnorms).toEqual([1, '3.body.1', '3.body.4', 6]);
    expect(m.input_transform_folded).toBe(true);
    expect(m.kernels).toEqual([
      'conv2d+relu',
      'save_skip',
      'conv2d+relu',
      'conv2d',
      'add_skip+relu',
      'maxpool2d',
      'conv2d+relu',
      'avgpool2d',
      'dense',
    ]);
    const block = m.layers[3];
    expect(block).toMatchObject({ index: 3, type: 'residual', compiled: 'kernel' });
    expect(block.layers[1]).toMatchObject({
      path: '3.body.1',
      type: 'batchnorm2d',
      compiled: 'folded_into_previous_conv',
    });
    expect(m.layers[9]).toMatchObject({ index: 9, type: 'flatten', compiled: 'reshape' });
  });

  it('OIP metadata: input [-1, 1, 8, 8]', async () => {
    const m = (await t.app.inject({ url: '/v2/models/digits-cnn-torch' })).json();
    expect(m.inputs).toEqual([{ name: 'input', datatype: 'FP32', shape: [-1, 1, 8, 8] }]);
  });
});

describe('the ONNX export', () => {
  it('exports the CNN as [batch, 1, 8, 8] → Conv/MaxPool/Add/GlobalAveragePool/Gemm; onnxruntime gives PyTorch’s probabilities', async () => {
    const res = await t.app.inject({
      url: '/v1/models/digits-cnn-torch/versions/1/model.onnx?probabilities=true',
    });
    expect(res.statusCode, res.body).toBe(200);
    const session = await onnxSession(res.rawPayload);
    expect(session.inputMetadata[0]).toMatchObject({ shape: ['batch', 1, 8, 8] });
    const onnx = await runOnnx(session, Float32Array.from(x.flat()), x.length, [1, 8, 8]);
    expectClose(onnx.probabilities!, torch.probabilities.data, OUTPUT_ATOL, 'probabilities');
  });
});

describe('errors name the offending place', () => {
  const row = x[0]!;
  it('an instance that is neither 64 numbers nor [1][8][8]', async () => {
    expectInvalid(await post(PREDICT, { instances: [row, row.slice(1)] }), [
      {
        path: 'instances[1]',
        message: 'expected 64 numbers or a nested [1][8][8] array, got 63 values',
      },
    ]);
  });

  it('a short image row and a bad pixel, at their nested places', async () => {
    const short = image(row);
    short[0]![3] = short[0]![3]!.slice(1);
    const bad = image(row) as unknown[][][];
    bad[0]![2]![5] = 'x';
    expectInvalid(await post(PREDICT, { instances: [short, bad] }), [
      {
        path: 'instances[0][0][3]',
        message: 'expected 8 values (dimension 2 of [1][8][8]), got 7',
      },
      { path: 'instances[1][0][2][5]', message: 'expected a finite number, got "x"' },
    ]);
  });

  it('an image with the channel dimension left out', async () => {
    expectInvalid(await post(PREDICT, { instances: [image(row)[0]] }), [
      { path: 'instances[0]', message: 'expected 1 value (dimension 0 of [1][8][8]), got 8' },
    ]);
  });

  it('an OIP shape that fits neither form', async () => {
    const res = await post(INFER, {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 8, 8], data: row }],
    });
    expectInvalid(res, [
      { path: 'inputs[0].shape', message: 'expected [N, 1, 8, 8] or [N, 64], got [1, 8, 8]' },
    ]);
  });

  it('OIP data that fits neither flat nor rows', async () => {
    const res = await post(INFER, {
      inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 1, 8, 8], data: row }],
    });
    expectInvalid(res, [
      {
        path: 'inputs[0].data',
        message:
          'expected 128 numbers (flat) or 2 rows of 64 numbers or a nested [1][8][8] array for shape [2, 1, 8, 8], got 64 numbers',
      },
    ]);
  });
});
