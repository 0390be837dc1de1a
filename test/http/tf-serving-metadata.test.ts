/**
 * GET /v1/models/{name}[/versions/{v}]/metadata carries TF Serving's GetModelMetadataResponse
 * (api_rest.md, "Model Metadata API"): `model_spec` and `metadata.signature_def`, whose
 * serving_default signature names the input TF Serving's clients discover ("input", as the named
 * predict forms and the Open Inference Protocol use it) and the one output predict answers; the
 * normserve fields stay beside them.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsRow, type PredictResponse } from './http-helpers.js';

let t: TestApp;

const config0 = () =>
  JSON.parse(readFileSync(join(bundledVersionDir('digits'), 'config.json'), 'utf8'));

/**
 * digits and digits-cnn, plus `regressor`: digits/1 re-labelled as a 10-output regression model
 * (trained with weights_epoch recorded), and `older`: digits/1 as bundled, under another name.
 */
function repository(): string {
  const root = makeRepository(['digits', 'digits-cnn']);
  const dir = join(root, 'regressor', '1');
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  config.name = 'regressor';
  config.task = 'regression';
  delete config.labels;
  // Trained since weights_epoch is recorded (docs/model-format.md): the last epoch's weights.
  config.training.weights_epoch = 40;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  const metrics = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ ...metrics, weights_epoch: 40 }));
  // digits/1 as bundled, config.json and metrics.json from before weights_epoch.
  const older = join(root, 'older', '1');
  cpSync(bundledVersionDir('digits'), older, { recursive: true });
  writeFileSync(join(older, 'config.json'), JSON.stringify({ ...config0(), name: 'older' }));
  return root;
}

beforeAll(async () => {
  t = await makeTestApp({ repository: repository() });
});
afterAll(async () => {
  await t.close();
});

interface TensorInfo {
  dtype: string;
  tensor_shape: { dim: { size: string; name: string }[]; unknown_rank: boolean };
  name: string;
}
interface Metadata {
  name: string;
  version: number;
  input_shape: number[];
  model_spec: { name: string; signature_name: string; version: string };
  metadata: {
    signature_def: {
      signature_def: Record<
        string,
        {
          inputs: Record<string, TensorInfo>;
          outputs: Record<string, TensorInfo>;
          method_name: string;
        }
      >;
    };
  };
}

const get = async (url: string) => {
  const res = await t.app.inject({ method: 'GET', url });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<Metadata>();
};
const tensor = (name: string, dims: number[]): TensorInfo => ({
  dtype: 'DT_FLOAT',
  tensor_shape: { dim: dims.map((d) => ({ size: String(d), name: '' })), unknown_rank: false },
  name,
});

describe("TF Serving's GetModelMetadataResponse in the metadata answer", () => {
  it('digits: model_spec, and serving_default with input "input" [-1, 64] and output "probabilities" [-1, 10]', async () => {
    for (const url of ['/v1/models/digits/metadata', '/v1/models/digits/versions/1/metadata']) {
      const body = await get(url);
      expect(body.model_spec).toEqual({ name: 'digits', signature_name: '', version: '1' });
      expect(Object.keys(body.metadata)).toEqual(['signature_def']);
      const signatures = body.metadata.signature_def.signature_def;
      expect(Object.keys(signatures)).toEqual(['serving_default']);
      expect(signatures.serving_default).toEqual({
        inputs: { input: tensor('input', [-1, 64]) },
        outputs: { probabilities: tensor('probabilities', [-1, 10]) },
        method_name: 'tensorflow/serving/predict',
      });
      // normserve's own fields stay.
      expect(body).toMatchObject({ name: 'digits', version: 1, input_shape: [64] });
      expect(body).toHaveProperty('layers');
      expect(body).toHaveProperty('folded_batchnorms');
    }
  });

  it('digits-cnn: input "input" [-1, 1, 8, 8]', async () => {
    const body = await get('/v1/models/digits-cnn/metadata');
    expect(body.model_spec).toEqual({ name: 'digits-cnn', signature_name: '', version: '1' });
    const signature = body.metadata.signature_def.signature_def.serving_default!;
    expect(signature.inputs).toEqual({ input: tensor('input', [-1, 1, 8, 8]) });
    expect(signature.outputs).toEqual({ probabilities: tensor('probabilities', [-1, 10]) });
    expect(body.input_shape).toEqual([1, 8, 8]);
  });

  it('a regression model’s one output is "predictions", the tensor its predict answers', async () => {
    const signature = (await get('/v1/models/regressor/metadata')).metadata.signature_def
      .signature_def.serving_default!;
    expect(signature.outputs).toEqual({ predictions: tensor('predictions', [-1, 10]) });
  });

  it('a client that reads the input name and shape from the metadata predicts with them', async () => {
    const signature = (await get('/v1/models/digits-cnn/metadata')).metadata.signature_def
      .signature_def.serving_default!;
    const [name] = Object.keys(signature.inputs);
    const dims = signature.inputs[name!]!.tensor_shape.dim.slice(1).map((d) => Number(d.size));
    const flat = digitsRow(3);
    const sample = Array.from({ length: dims[0]! }, (_, c) =>
      Array.from({ length: dims[1]! }, (_, h) =>
        flat.slice((c * dims[1]! + h) * dims[2]!, (c * dims[1]! + h + 1) * dims[2]!),
      ),
    );
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits-cnn:predict',
      payload: { inputs: { [name!]: [sample] } },
    });
    expect(res.statusCode, res.body).toBe(200);
    const [output] = Object.keys(signature.outputs);
    const width = Number(signature.outputs[output!]!.tensor_shape.dim[1]!.size);
    expect(res.json<PredictResponse>().outputs![0]).toHaveLength(width);
  });
});

describe("the training's weights_epoch (docs/model-format.md)", () => {
  const metadataOf = async (url: string) =>
    (await get(url)) as unknown as {
      training: Record<string, unknown>;
      metrics: Record<string, unknown>;
    };

  it('is shown in training and in metrics when config.json and metrics.json record it', async () => {
    const meta = await metadataOf('/v1/models/regressor/metadata');
    expect(meta.training).toMatchObject({ best_epoch: 39, epochs_run: 40, weights_epoch: 40 });
    expect(meta.metrics).toMatchObject({ best_epoch: 39, weights_epoch: 40 });
  });

  it('is absent, not null, for a version trained before it was recorded (the bundled digits/1)', async () => {
    const meta = await metadataOf('/v1/models/older/metadata');
    expect(meta.training).not.toHaveProperty('weights_epoch');
    expect(meta.metrics).toMatchObject({ best_epoch: 39 });
    expect(meta.metrics).not.toHaveProperty('weights_epoch');
  });
});
