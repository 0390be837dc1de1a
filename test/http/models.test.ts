/**
 * Health, readiness, model status (TF Serving GetModelStatus), metadata and Prometheus metrics,
 * with a healthy repository and with one holding broken (truncated) checkpoints.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import type { AppInstance } from '../../src/http/app-types.js';
import { ServiceMetrics } from '../../src/http/metrics.js';
import { createServices, ModelRegistry, parseServerConfig } from '../../src/service/index.js';
import { ADMIN_TOKEN, makeTestApp, type TestApp } from '../helpers/app.js';
import { bundledVersionDir, copyBundledModel } from '../helpers/bundled-models.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { digitsRow, expectProblem } from './http-helpers.js';

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of models/digits/1 as `name`/`version`, with model.safetensors cut to half its size. */
function addBrokenVersion(root: string, name: string, version: number): void {
  const dir = join(root, name, String(version));
  cpSync(bundledVersionDir('digits'), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { name: string };
  config.name = name;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const weights = readFileSync(join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'model.safetensors'), weights.subarray(0, weights.length >> 1));
}

function tempRepository(): string {
  const root = mkdtempSync(join(tmpdir(), 'normserve-http-models-'));
  temps.push(root);
  return root;
}

/** digits: good version 1, truncated version 2; broken: only a truncated version 1. */
function brokenRepository(): string {
  const root = tempRepository();
  copyBundledModel('digits', root);
  addBrokenVersion(root, 'digits', 2);
  addBrokenVersion(root, 'broken', 1);
  return root;
}

/**
 * The app wired as src/cli/server.ts wires it: load failures reach the metrics (makeTestApp's
 * registry has no such hook).
 */
async function serverLikeApp(repository: string): Promise<{ app: AppInstance }> {
  const config = parseServerConfig({
    MODEL_REPOSITORY: repository,
    ADMIN_TOKEN,
    MODEL_POLL_INTERVAL_MS: '0',
    LOG_LEVEL: 'silent',
  });
  const metrics = new ServiceMetrics({ defaultMetrics: false });
  const registry = new ModelRegistry(repository, {
    maxBatchSize: config.MAX_BATCH_SIZE,
    engine: TEST_ENGINE,
    onLoadFailure: (model) => metrics.loadFailures.inc({ model }),
  });
  await registry.refresh();
  const logger = pino({ level: 'silent' });
  const app = await buildApp({
    ...createServices({ config, registry, metrics, log: logger }),
    config,
    registry,
    metrics,
    adminToken: ADMIN_TOKEN,
    version: '0.0.0-test',
    logger,
  });
  await app.ready();
  return { app };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format into samples. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels. */
function sample(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0]!.value;
}

describe('with a healthy repository (digits, digits-torch)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ models: ['digits', 'digits-torch'] });
  });
  afterAll(async () => {
    await t.close();
  });
  const get = (url: string) => t.app.inject({ url });

  it('GET /healthz answers 200 {"status": "ok"}', async () => {
    const res = await get('/healthz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 with every model ready and its active version', async () => {
    const res = await get('/readyz');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'ready',
      models: [
        { name: 'digits', ready: true, active_version: 1 },
        { name: 'digits-torch', ready: true, active_version: 1 },
      ],
    });
  });

  it('GET /v1/models lists every model with its versions and states', async () => {
    const res = await get('/v1/models');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      models: [
        {
          name: 'digits',
          active_version: 1,
          state: 'AVAILABLE',
          versions: [{ version: 1, state: 'AVAILABLE', active: true }],
        },
        {
          name: 'digits-torch',
          active_version: 1,
          state: 'AVAILABLE',
          versions: [{ version: 1, state: 'AVAILABLE', active: true }],
        },
      ],
    });
  });

  it('GET /v1/models/{name} answers TF Serving model_version_status', async () => {
    const res = await get('/v1/models/digits');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      model_version_status: [
        {
          version: '1',
          state: 'AVAILABLE',
          status: { error_code: 'OK', error_message: '' },
          active: true,
        },
      ],
    });
    expect((await get('/v1/models/digits/versions/1')).json()).toEqual(res.json());
  });

  it('GET /v1/models/{name}/versions lists the versions of one model', async () => {
    const res = await get('/v1/models/digits-torch/versions');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ name: 'digits-torch', active_version: 1 });
  });

  it('status of an unknown model or version is a 404 problem', async () => {
    expectProblem(await get('/v1/models/nope'), 404, 'MODEL_NOT_FOUND');
    expectProblem(await get('/v1/models/digits/versions/5'), 404, 'VERSION_NOT_FOUND');
    expectProblem(await get('/v1/models/nope/metadata'), 404, 'MODEL_NOT_FOUND');
  });

  describe('metadata', () => {
    it('names the BatchNorm layers folded into Linear weights (1 and 5) and the folded input transform', async () => {
      for (const name of ['digits', 'digits-torch']) {
        const m = (await get(`/v1/models/${name}/metadata`)).json();
        expect(m.folded_batchnorms).toEqual([1, 5]);
        expect(m.input_transform_folded).toBe(true);
        expect(m.kernels).toEqual(['dense+relu', 'dense+relu', 'dense']);
        const fates = m.layers.map((l: { type: string; compiled: string }) => l.compiled);
        expect(fates.filter((f: string) => f === 'folded_into_previous_linear')).toHaveLength(2);
      }
    });

    it('gives the task, shapes and labels', async () => {
      const m = (await get('/v1/models/digits/metadata')).json();
      expect(m).toMatchObject({
        name: 'digits',
        version: 1,
        task: 'classification',
        input_shape: [64],
        output_shape: [10],
        labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
      });
      expect(m.layers[1]).toMatchObject({
        index: 1,
        type: 'batchnorm1d',
        compiled: 'folded_into_previous_linear',
      });
      expect(m.layers[3]).toMatchObject({ type: 'dropout', compiled: 'removed_in_eval' });
    });

    it('gives the training metrics of the bundled model (test accuracy 0.95 on 360 rows)', async () => {
      const m = (await get('/v1/models/digits/metadata')).json();
      expect(m.metrics.test).toMatchObject({ accuracy: 0.95, rows: 360 });
      expect(m.metrics.seed).toBe(42);
      expect(m.metrics.data_sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(m.training).toMatchObject({ seed: 42, data_path: 'data/digits/digits.csv' });
      expect(m.training.recipe.optimizer.type).toBe('adamw');
    });

    it('gives the provenance of the PyTorch-trained model', async () => {
      const m = (await get('/v1/models/digits-torch/metadata')).json();
      expect(m.provenance).toMatchObject({ source: 'pytorch' });
      expect(m.metrics).toBeNull();
    });

    it('the version route describes that version like the active route', async () => {
      const active = (await get('/v1/models/digits/metadata')).json();
      const one = (await get('/v1/models/digits/versions/1/metadata')).json();
      expect(one).toEqual(active);
    });
  });
});

describe('readiness', () => {
  it('GET /readyz answers 503 with a repository whose only model is broken; /healthz stays 200', async () => {
    const root = tempRepository();
    addBrokenVersion(root, 'broken', 1);
    const t = await makeTestApp({ repository: root });
    try {
      const res = await t.app.inject({ url: '/readyz' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({
        status: 'not_ready',
        models: [{ name: 'broken', ready: false, active_version: null }],
      });
      expect((await t.app.inject({ url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('with STRICT_READINESS=off, GET /readyz (and OIP readiness) answers 200 while one model of two serves', async () => {
    const root = tempRepository();
    addBrokenVersion(root, 'broken', 1);
    copyBundledModel('digits', root);
    for (const [strict, status] of [
      ['on', 503],
      ['off', 200],
    ] as const) {
      const t = await makeTestApp({ repository: root, env: { STRICT_READINESS: strict } });
      try {
        const res = await t.app.inject({ url: '/readyz' });
        expect(res.statusCode, `STRICT_READINESS=${strict}`).toBe(status);
        expect(res.json().models).toEqual([
          { name: 'broken', ready: false, active_version: null },
          { name: 'digits', ready: true, active_version: 1 },
        ]);
        expect((await t.app.inject({ url: '/v2/health/ready' })).statusCode).toBe(status);
      } finally {
        await t.close();
      }
    }
  });

  it('GET /readyz answers 503 with an empty repository, strict or not', async () => {
    for (const strict of ['on', 'off']) {
      const t = await makeTestApp({
        repository: tempRepository(),
        env: { STRICT_READINESS: strict },
      });
      try {
        const res = await t.app.inject({ url: '/readyz' });
        expect(res.statusCode).toBe(503);
        expect(res.json()).toEqual({ status: 'not_ready', models: [] });
      } finally {
        await t.close();
      }
    }
  });
});

describe('with broken checkpoints (digits/2 and broken/1 truncated)', () => {
  let app: AppInstance;
  beforeAll(async () => {
    ({ app } = await serverLikeApp(brokenRepository()));
  });
  afterAll(async () => {
    await app.close();
  });
  const get = (url: string) => app.inject({ url });
  const truncated = /model\.safetensors: truncated/;

  it('/v1/models/{name} reports the failed version as FAILED with the reason (TF Serving shape)', async () => {
    const res = await get('/v1/models/digits');
    expect(res.statusCode).toBe(200);
    const { model_version_status: status } = res.json();
    expect(status).toHaveLength(2);
    expect(status[0]).toMatchObject({
      version: '2',
      state: 'FAILED',
      // TF Serving's error_code, and normserve's stable code of the failure (docs/errors.md).
      status: { error_code: 'UNKNOWN', code: 'SAFETENSORS_INVALID' },
      active: false,
    });
    expect(status[0].status.error_message).toMatch(truncated);
    expect(status[1]).toEqual({
      version: '1',
      state: 'AVAILABLE',
      status: { error_code: 'OK', error_message: '' },
      active: true,
    });
    const one = (await get('/v1/models/digits/versions/2')).json();
    expect(one.model_version_status).toEqual([status[0]]);
  });

  it('/v1/models lists the failed versions with state FAILED and a reason', async () => {
    const { models } = (await get('/v1/models')).json();
    const byName = Object.fromEntries(models.map((m: { name: string }) => [m.name, m])) as Record<
      string,
      { active_version: number | null; state: string; versions: Record<string, unknown>[] }
    >;
    expect(byName['broken']).toMatchObject({ active_version: null, state: 'UNAVAILABLE' });
    expect(byName['broken']!.versions[0]).toMatchObject({ version: 1, state: 'FAILED' });
    expect(byName['broken']!.versions[0]!['reason']).toMatch(truncated);
    expect(byName['digits']).toMatchObject({ active_version: 1, state: 'AVAILABLE' });
    expect(byName['digits']!.versions[1]).toMatchObject({ version: 2, state: 'FAILED' });
    expect(byName['digits']!.versions[1]!['reason']).toMatch(truncated);
  });

  it('the good version keeps serving predictions', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: { instances: [digitsRow()] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-model-version']).toBe('1');
    const infer = await app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: {
        inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', data: digitsRow() }],
      },
    });
    expect(infer.statusCode).toBe(200);
  });

  it('the failed version is refused with its reason', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/2:predict',
      payload: { instances: [digitsRow()] },
    });
    const body = expectProblem(res, 404, 'VERSION_NOT_FOUND');
    expect(body.error).toMatch(/^version 2 of model "digits" failed to load: .*truncated/);
  });

  it('the model without an available version is a 503 MODEL_UNAVAILABLE naming why', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/models/broken:predict',
      payload: { instances: [digitsRow()] },
    });
    const body = expectProblem(res, 503, 'MODEL_UNAVAILABLE');
    expect(body.error).toMatch(/^model "broken" has no available version \(1: FAILED .*truncated/);
  });

  it('readiness is 503 on /readyz and /v2/health/ready, per model on /v2/models/{name}/ready', async () => {
    const readyz = await get('/readyz');
    expect(readyz.statusCode).toBe(503);
    expect(readyz.json()).toEqual({
      status: 'not_ready',
      models: [
        { name: 'broken', ready: false, active_version: null },
        { name: 'digits', ready: true, active_version: 1 },
      ],
    });
    expect((await get('/v2/health/ready')).statusCode).toBe(503);
    expect((await get('/v2/models/digits/ready')).statusCode).toBe(200);
    const broken = await get('/v2/models/broken/ready');
    expect(broken.statusCode).toBe(503);
    expect(broken.json()).toEqual({ name: 'broken', ready: false });
    const v2 = await get('/v2/models/digits/versions/2/ready');
    expect(v2.statusCode).toBe(503);
    expect(v2.json()).toEqual({ name: 'digits', ready: false });
  });

  it('/metrics counts each version that failed to load in normserve_model_load_failures_total', async () => {
    const samples = parseMetrics((await get('/metrics')).body);
    expect(sample(samples, 'normserve_model_load_failures_total', { model: 'digits' })).toBe(1);
    expect(sample(samples, 'normserve_model_load_failures_total', { model: 'broken' })).toBe(1);
    expect(sample(samples, 'normserve_model_active_version', { model: 'digits' })).toBe(1);
  });
});

describe('/metrics', () => {
  let app: AppInstance;
  let samples: Sample[];
  beforeAll(async () => {
    ({ app } = await serverLikeApp(brokenRepository()));
    const post = (url: string, payload: unknown) =>
      app.inject({ method: 'POST', url, payload: payload as Record<string, unknown> });
    const rows = (n: number) => Array.from({ length: n }, (_, i) => digitsRow(i));
    await post('/v1/models/digits:predict', { instances: rows(3) });
    await post('/v1/models/digits:predict?fused=false', { instances: rows(1) });
    await post('/v1/models/digits/versions/1:predict', { inputs: rows(20) });
    await post('/v2/models/digits/infer', {
      inputs: [{ name: 'input', shape: [2, 64], datatype: 'FP32', data: rows(2).flat() }],
    });
    await post('/v1/models/digits:predict', { instances: [[1, 'x']] });
    await post('/v1/models/made-up-model:predict', { instances: rows(1) });
    await app.inject({ url: '/v1/models/digits/metadata' });
    const download = await app.inject({ url: '/v1/models/digits/versions/1/model.onnx' });
    expect(download.statusCode).toBe(200);
    const res = await app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    samples = parseMetrics(res.body);
  });
  afterAll(async () => {
    await app.close();
  });
  const requests = (labels: Record<string, string>) =>
    sample(samples, 'normserve_http_requests_total', labels);

  it('normserve_http_requests_total counts requests by method, route pattern, status, model and version', async () => {
    expect(
      requests({
        method: 'POST',
        route: '/v1/models/{name}:predict',
        status: '200',
        model: 'digits',
        version: '1',
      }),
    ).toBe(2);
    expect(
      requests({
        method: 'POST',
        route: '/v1/models/{name}/versions/{version}:predict',
        status: '200',
        model: 'digits',
        version: '1',
      }),
    ).toBe(1);
    expect(
      requests({
        method: 'POST',
        route: '/v2/models/{name}/infer',
        status: '200',
        model: 'digits',
        version: '1',
      }),
    ).toBe(1);
  });

  it('a request that fails validation is counted under the model it named', async () => {
    expect(
      requests({
        method: 'POST',
        route: '/v1/models/{name}:predict',
        status: '400',
        model: 'digits',
        version: '',
      }),
    ).toBe(1);
  });

  it('status and metadata requests are counted under their model', async () => {
    expect(requests({ method: 'GET', route: '/v1/models/{name}/metadata', status: '200' })).toBe(1);
    expect(requests({ route: '/v1/models/{name}/metadata', model: 'digits', version: '' })).toBe(1);
  });

  it('an ONNX download is counted under the model and the version it served', async () => {
    expect(
      requests({
        method: 'GET',
        route: '/v1/models/{name}/versions/{version}/model.onnx',
        status: '200',
        model: 'digits',
        version: '1',
      }),
    ).toBe(1);
  });

  it('a made-up model name never becomes a label value (bounded cardinality)', async () => {
    expect(samples.some((s) => Object.values(s.labels).includes('made-up-model'))).toBe(false);
    expect(
      requests({ route: '/v1/models/{name}:predict', status: '404', model: '', version: '' }),
    ).toBe(1);
  });

  it('route labels are route patterns, never raw URLs', async () => {
    const routes = samples
      .filter((s) => s.name === 'normserve_http_requests_total')
      .map((s) => s.labels['route']!);
    for (const route of routes) expect(route).not.toMatch(/digits|\?/);
  });

  it('normserve_inference_duration_seconds observes compute time per model, version and fused', async () => {
    expect(
      sample(samples, 'normserve_inference_duration_seconds_count', {
        model: 'digits',
        version: '1',
        fused: 'true',
      }),
    ).toBe(3);
    expect(
      sample(samples, 'normserve_inference_duration_seconds_count', {
        model: 'digits',
        version: '1',
        fused: 'false',
      }),
    ).toBe(1);
    expect(
      sample(samples, 'normserve_inference_duration_seconds_sum', {
        model: 'digits',
        version: '1',
        fused: 'true',
      }),
    ).toBeGreaterThan(0);
  });

  it('normserve_batch_size observes the rows of each inference request', async () => {
    expect(sample(samples, 'normserve_batch_size_count', { model: 'digits' })).toBe(4);
    expect(sample(samples, 'normserve_batch_size_sum', { model: 'digits' })).toBe(3 + 1 + 20 + 2);
    expect(sample(samples, 'normserve_batch_size_bucket', { model: 'digits', le: '2' })).toBe(2);
    expect(sample(samples, 'normserve_batch_size_bucket', { model: 'digits', le: '16' })).toBe(3);
    expect(sample(samples, 'normserve_batch_size_bucket', { model: 'digits', le: '32' })).toBe(4);
  });

  it('normserve_model_load_failures_total is present after a broken model was loaded', async () => {
    expect(
      sample(samples, 'normserve_model_load_failures_total', { model: 'broken' }),
    ).toBeGreaterThanOrEqual(1);
  });
});
