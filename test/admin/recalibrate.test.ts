/**
 * POST /v1/models/{name}:recalibrate through HTTP, as the recalibration issue tells it: the
 * "night" shift wrecks the bundled digits model, recalibrating its BatchNorm statistics on the
 * unlabeled night rows publishes version 2 that restores the accuracy, rollback restores version
 * 1 bit for bit and survives a restart. Also: the three upload formats agree, modes, options,
 * errors, deletion, jobs (202), the per-model lock (409), and PyTorch's statistics.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSequential, type ModelConfig, parseModelConfig } from '../../src/checkpoint/index.js';
import { BatchNorm, namedModules, Rng } from '../../src/nn/index.js';
import { recalibrate as recalibrateLibrary } from '../../src/recalibration/index.js';
import { ModelRepository } from '../../src/repository/index.js';
import {
  ADMIN,
  expectProblem,
  float32Body,
  labelAccuracy,
  ndjsonBody,
  predictRows,
  rowsSha256,
  softmax64,
  versionConfig,
  versionTensors,
  waitFor,
} from '../helpers/admin.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { streamedUpload } from '../helpers/streamed-upload.js';
import { listTree } from '../helpers/temp-files.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';
import { loadModel, WIDTH } from '../recalibration/helpers/digits-fixtures.js';
import { expectStatisticsClose } from '../recalibration/helpers/statistics-close.js';

/** The night shift must really hurt the bundled model for the story to mean anything. */
const NIGHT_ACCURACY_MAX = 0.75;
/** After recalibration the accuracy on the night rows is within this of the clean accuracy. */
const RECALIBRATED_ACCURACY_MARGIN = 0.01;
/**
 * prior mode against the blend t + w·(s − t) recomputed from the float32-stored source and
 * exact statistics: the service blends the unrounded float64 target, so an ulp or two apart.
 */
const BLEND_RTOL = 1e-6;

const test = digitsTestRows();
const night = nightShift(test.x);
const RECALIBRATE = '/v1/models/digits:recalibrate';
/** These suites make many admin requests; the rate limit has its own test (auth.test.ts). */
const UNLIMITED = { ADMIN_RATE_LIMIT_PER_MINUTE: '100000' };
const NDJSON = { ...ADMIN, 'content-type': 'application/x-ndjson' };
const FLOAT32 = { ...ADMIN, 'content-type': 'application/octet-stream' };
const CSV = { ...ADMIN, 'content-type': 'text/csv' };
/** Rows as a CSV whose header is the digits model's feature names (p0 … p63). */
const csvBody = (rows: readonly (readonly number[])[]) =>
  `${[Array.from({ length: 64 }, (_, i) => `p${i}`), ...rows].map((r) => r.join(',')).join('\n')}\n`;

interface Outcome {
  model: string;
  version: number;
  parent_version: number;
  mode: string;
  samples: number;
  activated: boolean;
  duration_ms: number;
  data_sha256: string;
  layers: { index: number; features: number; mean_shift: number; std_ratio: number }[];
  batches?: number;
  skipped?: number;
  job_id: string;
}

interface JobBody {
  id: string;
  kind: string;
  model: string;
  state: 'running' | 'succeeded' | 'failed';
  phase: string;
  progress: { rows: number; total_rows: number | null };
  result?: Outcome;
  error?: { code: string; message: string };
}

const isRunningStat = (name: string) => /\.running_(mean|var)$/.test(name);
/** Entries of a directory tree that are temporaries of an atomic write. */
const temporaries = (root: string) => listTree(root).filter((p) => /(^|\/)\.tmp-/.test(p));
/**
 * The temporaries left once the writes in flight are done: job records (`.jobs/`) are written
 * in the background after the response, so give them a moment; anything left after that stays.
 */
async function leftoverTemporaries(root: string): Promise<string[]> {
  await waitFor(() => (temporaries(root).length === 0 ? true : undefined), 'writes', 3_000).catch(
    () => undefined,
  );
  return temporaries(root);
}
/** Version directories of a model on disk. */
const versionDirs = (repository: string, model = 'digits') =>
  readdirSync(join(repository, model))
    .filter((n) => /^[0-9]+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);

async function recalibrate(
  t: TestApp,
  body: unknown,
  options: { url?: string; headers?: Record<string, string> } = {},
) {
  return t.app.inject({
    method: 'POST',
    url: options.url ?? RECALIBRATE,
    headers: options.headers ?? ADMIN,
    payload: body as string,
  });
}

async function pollJob(t: TestApp, location: string): Promise<JobBody> {
  return waitFor(async () => {
    const res = await t.app.inject({ method: 'GET', url: location, headers: ADMIN });
    expect(res.statusCode, res.body).toBe(200);
    const job = res.json<JobBody>();
    return job.state === 'running' ? undefined : job;
  }, `job ${location}`);
}

async function modelListing(t: TestApp, model = 'digits') {
  const res = await t.app.inject({ method: 'GET', url: `/v1/models/${model}/versions` });
  expect(res.statusCode).toBe(200);
  return res.json<{
    active_version: number | null;
    versions: { version: number; state: string; active: boolean; reason?: string }[];
  }>();
}

describe('the night shift, fixed through HTTP (issue acceptance)', () => {
  let t: TestApp;
  let cleanAccuracy = 0;
  let v1Night = '';
  let v1Clean = '';
  let v2Predictions: number[][] = [];
  let outcome: Outcome;
  const startedAt = Date.now();

  beforeAll(async () => {
    t = await makeTestApp({ env: UNLIMITED });
  });
  afterAll(async () => {
    await t.close();
  });

  it('the night rows wreck version 1', async () => {
    const clean = await predictRows(t.app, 'digits', test.x);
    const shifted = await predictRows(t.app, 'digits', night);
    expect(clean.model_version).toBe(1);
    cleanAccuracy = labelAccuracy(clean.labels, test.y);
    const nightAccuracy = labelAccuracy(shifted.labels, test.y);
    console.log(`digits v1: clean ${cleanAccuracy.toFixed(4)}, night ${nightAccuracy.toFixed(4)}`);
    expect(nightAccuracy).toBeLessThan(NIGHT_ACCURACY_MAX);
    v1Night = shifted.res.body;
    v1Clean = clean.res.body;
  });

  it('POST :recalibrate (exact) → 201, Location, version 2 on disk and active', async () => {
    const res = await recalibrate(t, { instances: night, note: 'night camera' });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers.location).toBe('/v1/models/digits/versions/2');
    expect(res.headers['x-model-version']).toBe('2');
    outcome = res.json<Outcome>();
    expect(outcome).toMatchObject({
      model: 'digits',
      version: 2,
      parent_version: 1,
      mode: 'exact',
      samples: 360,
      activated: true,
      data_sha256: rowsSha256(night),
    });
    expect(outcome.batches).toBeUndefined();
    expect(outcome.duration_ms).toBeGreaterThan(0);
    expect(outcome.layers.map((l) => [l.index, l.features])).toEqual([
      [1, 128],
      [5, 64],
    ]);
    for (const layer of outcome.layers) {
      expect(Object.keys(layer).sort()).toEqual([
        'features',
        'index',
        'mean_shift',
        'path',
        'std_ratio',
      ]);
      expect(layer.mean_shift).toBeGreaterThan(0);
      expect(layer.std_ratio).toBeGreaterThan(0);
    }
    // The night images have less contrast: the first BatchNorm sees a narrower distribution.
    expect(outcome.layers[0]!.std_ratio).toBeLessThan(1);

    const dir = join(t.repository, 'digits', '2');
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'metrics.json', 'model.safetensors']);
    expect(await leftoverTemporaries(t.repository)).toEqual([]);

    const status = await t.app.inject({ method: 'GET', url: '/v1/models/digits' });
    expect(status.statusCode).toBe(200);
    const versions = status.json<{
      model_version_status: { version: string; state: string; active: boolean }[];
    }>().model_version_status;
    expect(versions.map((v) => [v.version, v.state, v.active])).toEqual([
      ['2', 'AVAILABLE', true],
      ['1', 'AVAILABLE', false],
    ]);
    expect((await modelListing(t)).active_version).toBe(2);
    const record = JSON.parse(
      readFileSync(join(t.repository, 'digits', 'active-version.json'), 'utf8'),
    );
    expect(record).toMatchObject({ version: 2, note: 'night camera' });
  });

  it('version 2 restores the accuracy on the night rows, and says so in X-Model-Version', async () => {
    const after = await predictRows(t.app, 'digits', night);
    expect(after.res.headers['x-model-version']).toBe('2');
    expect(after.model_version).toBe(2);
    const accuracy = labelAccuracy(after.labels, test.y);
    console.log(`digits v2 (recalibrated on the night rows): night ${accuracy.toFixed(4)}`);
    expect(accuracy).toBeGreaterThanOrEqual(cleanAccuracy - RECALIBRATED_ACCURACY_MARGIN);
    v2Predictions = after.predictions;
    const infer = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: {
        inputs: [
          { name: 'input', shape: [2, 64], datatype: 'FP32', data: night.slice(0, 2).flat() },
        ],
      },
    });
    expect(infer.statusCode).toBe(200);
    expect(infer.headers['x-model-version']).toBe('2');
    expect(infer.json()).toMatchObject({ model_version: '2' });
  });

  it('config.json records the provenance; metadata serves it', async () => {
    const config = versionConfig(t.repository, 'digits', 2);
    const provenance = config.provenance!;
    expect(provenance).toMatchObject({
      kind: 'recalibration',
      parent_version: 1,
      mode: 'exact',
      samples: 360,
      data_sha256: rowsSha256(night),
      note: 'night camera',
    });
    const created = Date.parse(String(provenance.created_at));
    expect(created).toBeGreaterThanOrEqual(startedAt - 1000);
    expect(created).toBeLessThanOrEqual(Date.now() + 1000);
    expect(String(provenance.created_at)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // Everything but the provenance is the parent's config.
    const parent = versionConfig(t.repository, 'digits', 1);
    const { provenance: _p, ...rest } = config;
    expect(rest).toEqual(parent);
    const metrics = JSON.parse(
      readFileSync(join(t.repository, 'digits', '2', 'metrics.json'), 'utf8'),
    );
    expect(metrics).toMatchObject({ data_sha256: rowsSha256(night), layers: outcome.layers });
    const meta = await t.app.inject({ method: 'GET', url: '/v1/models/digits/metadata' });
    expect(meta.json()).toMatchObject({ version: 2, provenance: { parent_version: 1 } });
    // Metadata shows what is true of version 2: the recalibration's own report as its metrics,
    // the training record of version 1 without version 1's test accuracy (measured with version
    // 1's statistics), and which version that training produced.
    const meta2 = (
      await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions/2/metadata' })
    ).json() as Record<string, unknown>;
    expect(meta2.metrics).toEqual({
      format: 'normserve.recalibration/v1',
      mode: 'exact',
      samples: 360,
      data_sha256: rowsSha256(night),
      layers: outcome.layers,
    });
    expect(meta2.trained_version).toBe(1);
    const { test_accuracy, ...trainingRecord } = parent.training as Record<string, unknown>;
    expect(test_accuracy).toBe(0.95);
    expect(meta2.training).toEqual(trainingRecord);
    const meta1 = (
      await t.app.inject({ method: 'GET', url: '/v1/models/digits/versions/1/metadata' })
    ).json() as Record<string, unknown>;
    expect(meta1).toMatchObject({ trained_version: 1, training: { test_accuracy: 0.95 } });
    expect(meta1.metrics).toMatchObject({ test: { accuracy: 0.95 }, best_epoch: 39, seed: 42 });
  });

  it('γ, β and the Linear weights are byte-identical to version 1; only running stats changed', () => {
    const v1 = versionTensors(t.repository, 'digits', 1);
    const v2 = versionTensors(t.repository, 'digits', 2);
    expect([...v2.keys()].sort()).toEqual([...v1.keys()].sort());
    let stats = 0;
    for (const [name, before] of v1) {
      const after = v2.get(name)!;
      expect(after.shape, name).toEqual(before.shape);
      if (isRunningStat(name)) {
        stats++;
        expect(Buffer.from(after.bytes).equals(Buffer.from(before.bytes)), name).toBe(false);
        const changed = after.values!.filter((v, i) => v !== before.values![i]).length;
        expect(changed, `${name}: entries changed`).toBe(after.values!.length);
        if (name.endsWith('running_var')) expect(after.values!.every((v) => v >= 0)).toBe(true);
      } else {
        // weight/bias of Linear and BatchNorm, num_batches_tracked (exact mode leaves it alone)
        expect(Buffer.from(after.bytes).equals(Buffer.from(before.bytes)), name).toBe(true);
      }
    }
    expect(stats).toBe(4);
  });

  it('rollback (:activate 1) restores version 1 bit for bit, persistently, across a restart', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:activate',
      headers: ADMIN,
      payload: { note: 'roll back' },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ model: 'digits', active_version: 1, previous_version: 2 });
    expect(res.headers['x-model-version']).toBe('1');

    const shifted = await predictRows(t.app, 'digits', night);
    expect(shifted.res.headers['x-model-version']).toBe('1');
    expect(shifted.res.body).toBe(v1Night);
    expect((await predictRows(t.app, 'digits', test.x)).res.body).toBe(v1Clean);

    const record = JSON.parse(
      readFileSync(join(t.repository, 'digits', 'active-version.json'), 'utf8'),
    );
    expect(record).toMatchObject({ version: 1, note: 'roll back' });
    expect(Date.parse(record.updated_at)).toBeGreaterThanOrEqual(startedAt - 1000);

    // A new process on the same repository serves version 1 (not the highest, 2).
    const restarted = await makeTestApp({ repository: t.repository });
    try {
      const again = await predictRows(restarted.app, 'digits', night);
      expect(again.res.headers['x-model-version']).toBe('1');
      expect(again.res.body).toBe(v1Night);
      const listing = await modelListing(restarted);
      expect(listing.active_version).toBe(1);
      expect(listing.versions.map((v) => [v.version, v.state])).toEqual([
        [1, 'AVAILABLE'],
        [2, 'AVAILABLE'],
      ]);
      // Version 2 is still there to be asked for explicitly.
      const v2 = await predictRows(restarted.app, 'digits', night, 2);
      expect(v2.predictions).toEqual(v2Predictions);
    } finally {
      await restarted.close();
    }
  });

  it('NDJSON and float32 uploads of the same rows give the same hash, statistics and predictions (activate:false keeps 1)', async () => {
    const ndjson = await recalibrate(t, ndjsonBody(night), {
      url: `${RECALIBRATE}?activate=false&note=ndjson`,
      headers: NDJSON,
    });
    expect(ndjson.statusCode, ndjson.body).toBe(201);
    const binary = await recalibrate(t, float32Body(night), {
      url: `${RECALIBRATE}?activate=false`,
      headers: FLOAT32,
    });
    expect(binary.statusCode, binary.body).toBe(201);
    const outcomes = [ndjson.json<Outcome>(), binary.json<Outcome>()];
    expect(outcomes.map((o) => o.version)).toEqual([3, 4]);
    expect(ndjson.headers.location).toBe('/v1/models/digits/versions/3');
    const v2 = versionTensors(t.repository, 'digits', 2);
    for (const o of outcomes) {
      expect(o).toMatchObject({
        parent_version: 1,
        samples: 360,
        activated: false,
        data_sha256: outcome.data_sha256,
        layers: outcome.layers,
      });
      const tensors = versionTensors(t.repository, 'digits', o.version);
      for (const [name, tensor] of v2) {
        expect(Buffer.from(tensors.get(name)!.bytes).equals(Buffer.from(tensor.bytes)), name).toBe(
          true,
        );
      }
      expect(versionConfig(t.repository, 'digits', o.version).provenance).toMatchObject({
        data_sha256: rowsSha256(night),
        samples: 360,
      });
      const p = await predictRows(t.app, 'digits', night, o.version);
      expect(p.predictions).toEqual(v2Predictions);
    }
    expect(versionConfig(t.repository, 'digits', 3).provenance).toMatchObject({ note: 'ndjson' });

    // Not activated: version 1 is still served, and recorded.
    expect((await modelListing(t)).active_version).toBe(1);
    expect((await predictRows(t.app, 'digits', night)).res.body).toBe(v1Night);

    // A later :activate switches.
    const activate = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/3:activate',
      headers: ADMIN,
    });
    expect(activate.json()).toEqual({ model: 'digits', active_version: 3, previous_version: 1 });
    const now = await predictRows(t.app, 'digits', night);
    expect(now.model_version).toBe(3);
    expect(now.predictions).toEqual(v2Predictions);
  });
});

describe('modes and options through HTTP', () => {
  let t: TestApp;
  let exact: Outcome;
  beforeAll(async () => {
    t = await makeTestApp({ env: UNLIMITED });
    const res = await recalibrate(t, { instances: night, activate: false });
    expect(res.statusCode, res.body).toBe(201);
    exact = res.json<Outcome>();
  });
  afterAll(async () => {
    await t.close();
  });

  it('prior with prior_strength 0 equals exact, byte for byte', async () => {
    const res = await recalibrate(t, {
      instances: night,
      mode: 'prior',
      prior_strength: 0,
      activate: false,
    });
    expect(res.statusCode, res.body).toBe(201);
    const prior = res.json<Outcome>();
    expect(prior).toMatchObject({ mode: 'prior', layers: exact.layers });
    const a = versionTensors(t.repository, 'digits', exact.version);
    const b = versionTensors(t.repository, 'digits', prior.version);
    for (const [name, tensor] of a)
      expect(Buffer.from(b.get(name)!.bytes).equals(Buffer.from(tensor.bytes)), name).toBe(true);
    expect(versionConfig(t.repository, 'digits', prior.version).provenance).toMatchObject({
      mode: 'prior',
      prior_strength: 0,
    });
  });

  it('prior with prior_strength N (query string, NDJSON) blends source and target: t + N/(N+n)·(s − t)', async () => {
    const N = 120;
    const res = await recalibrate(t, ndjsonBody(night), {
      url: `${RECALIBRATE}?mode=prior&prior_strength=${N}&activate=false`,
      headers: NDJSON,
    });
    expect(res.statusCode, res.body).toBe(201);
    const prior = res.json<Outcome>();
    const w = N / (N + night.length);
    const source = versionTensors(t.repository, 'digits', 1);
    const target = versionTensors(t.repository, 'digits', exact.version);
    const blended = versionTensors(t.repository, 'digits', prior.version);
    // The first BatchNorm sees the same inputs as in exact mode, so its blend is checkable
    // directly; later ones see inputs normalized by the blended statistics before them.
    for (const name of ['1.running_mean', '1.running_var']) {
      const s = source.get(name)!.values!;
      const expected = Array.from(target.get(name)!.values!, (v, i) => v + w * (s[i]! - v));
      expectRelClose(blended.get(name)!.values!, expected, BLEND_RTOL, name);
    }
    for (const name of ['5.running_mean', '5.running_var']) {
      const bytes = Buffer.from(blended.get(name)!.bytes);
      expect(bytes.equals(Buffer.from(source.get(name)!.bytes)), name).toBe(false);
      expect(bytes.equals(Buffer.from(target.get(name)!.bytes)), name).toBe(false);
    }
    // The first BatchNorm moves less than in exact mode (it stays between source and target).
    expect(prior.layers[0]!.mean_shift).toBeLessThan(exact.layers[0]!.mean_shift);
    expect(versionConfig(t.repository, 'digits', prior.version).provenance).toMatchObject({
      mode: 'prior',
      prior_strength: N,
    });
  });

  it('running with batch_size (query string, float32) reports batches and sets num_batches_tracked', async () => {
    const res = await recalibrate(t, float32Body(night), {
      url: `${RECALIBRATE}?mode=running&batch_size=64&activate=false`,
      headers: FLOAT32,
    });
    expect(res.statusCode, res.body).toBe(201);
    const running = res.json<Outcome>();
    expect(running).toMatchObject({ mode: 'running', batches: 6, samples: 360 });
    expect(versionConfig(t.repository, 'digits', running.version).provenance).toMatchObject({
      mode: 'running',
      batch_size: 64,
      batches: 6,
    });
    const tensors = versionTensors(t.repository, 'digits', running.version);
    const exactTensors = versionTensors(t.repository, 'digits', exact.version);
    for (const [name, tensor] of tensors) {
      if (name.endsWith('num_batches_tracked')) {
        const view = new DataView(tensor.bytes.buffer, tensor.bytes.byteOffset, 8);
        expect(view.getBigInt64(0, true), name).toBe(6n);
      } else if (isRunningStat(name)) {
        // Batch statistics averaged: close to, but not, the exact ones.
        expect(Buffer.from(tensor.bytes).equals(Buffer.from(exactTensors.get(name)!.bytes))).toBe(
          false,
        );
      }
    }
    const p = await predictRows(t.app, 'digits', night, running.version);
    expect(labelAccuracy(p.labels, test.y)).toBeGreaterThan(NIGHT_ACCURACY_MAX);
  });

  it('running on 65 rows in batches of 64 (BatchNorm1d): the final one-row batch is skipped and says so', async () => {
    const res = await recalibrate(
      t,
      night
        .slice(0, 65)
        .map((r) => JSON.stringify(r))
        .join('\n'),
      {
        url: `${RECALIBRATE}?mode=running&batch_size=64&activate=false`,
        headers: NDJSON,
      },
    );
    expect(res.statusCode, res.body).toBe(201);
    const running = res.json<Outcome>();
    expect(running).toMatchObject({ mode: 'running', samples: 65, batches: 1, skipped: 1 });
    const said = { mode: 'running', batch_size: 64, samples: 65, batches: 1, skipped: 1 };
    expect(versionConfig(t.repository, 'digits', running.version).provenance).toMatchObject(said);
    const metrics = JSON.parse(
      readFileSync(join(t.repository, 'digits', String(running.version), 'metrics.json'), 'utf8'),
    );
    expect(metrics).toMatchObject({ format: 'normserve.recalibration/v1', ...said });
    // 64 rows, no row left over: nothing skipped, said as 0.
    const whole = await recalibrate(t, float32Body(night.slice(0, 128)), {
      url: `${RECALIBRATE}?mode=running&batch_size=64&activate=false`,
      headers: FLOAT32,
    });
    expect(whole.json<Outcome>()).toMatchObject({ batches: 2, skipped: 0 });
  });

  it('uploads of several chunks give the statistics of the library bit for bit (the next chunk is read while one is measured)', async () => {
    // 10,800 rows: three chunks of the upload readers, each measured on the recalibration's
    // helper thread while the next is read into the readers' other chunk (pushAll).
    const rows = Array.from({ length: 10_800 }, (_, i) => night[i % night.length]!);
    const { network, inputTransform } = loadModel(bundledVersionDir('digits'));
    await recalibrateLibrary(network, inputTransform, [WIDTH], Float32Array.from(rows.flat()), {
      mode: 'exact',
      engine: { engine: TEST_ENGINE },
    });
    const expected = new Map(
      [...network.stateDict()]
        .filter(([name]) => isRunningStat(name))
        .map(([name, v]) => [name, Buffer.from((v as { data: Float32Array }).data.buffer)]),
    );
    expect(expected.size).toBe(4);
    for (const [body, headers] of [
      [float32Body(rows), FLOAT32],
      [ndjsonBody(rows), NDJSON],
    ] as const) {
      const res = await recalibrate(t, body, { url: `${RECALIBRATE}?activate=false`, headers });
      expect(res.statusCode, res.body).toBe(201);
      const o = res.json<Outcome>();
      expect(o.samples).toBe(10_800);
      expect(o.data_sha256).toBe(rowsSha256(rows));
      const tensors = versionTensors(t.repository, 'digits', o.version);
      for (const [name, bytes] of expected)
        expect(Buffer.from(tensors.get(name)!.bytes).equals(bytes), name).toBe(true);
    }
    // A bad value in the second chunk is refused while the third is being read: 400 naming it,
    // nothing published, and the model free for the next recalibration.
    const bad = rows.map((r) => [...r]);
    bad[5000]![7] = Number.NaN;
    const before = versionDirs(t.repository);
    const refused = await recalibrate(t, float32Body(bad), { headers: FLOAT32 });
    expect(expectProblem(refused, 400, 'INVALID_INPUT').detail).toMatch(/row 5000, column 7/);
    expect(versionDirs(t.repository)).toEqual(before);
    const again = await recalibrate(t, float32Body(rows.slice(0, 100)), {
      url: `${RECALIBRATE}?activate=false`,
      headers: FLOAT32,
    });
    expect(again.statusCode, again.body).toBe(201);
  });

  it('invalid options → 400 naming the option; the model is not locked afterwards', async () => {
    const cases: { url?: string; body: unknown; path: string }[] = [
      { body: { instances: night, mode: 'sideways' }, path: 'mode' },
      { body: { instances: night, mode: 'running', batch_size: 1 }, path: 'batch_size' },
      { body: { instances: night, mode: 'prior', prior_strength: -1 }, path: 'prior_strength' },
      { body: { instances: night, activate: 'yes' }, path: 'activate' },
      { body: { instances: night, colour: 'blue' }, path: 'colour' },
      { url: `${RECALIBRATE}?mode=sideways`, body: { instances: night }, path: 'query.mode' },
      { url: `${RECALIBRATE}?batch_size=0`, body: { instances: night }, path: 'query.batch_size' },
      // One row per batch gives the digits MLP's BatchNorm1d one value per channel.
      {
        url: `${RECALIBRATE}?mode=running&batch_size=1`,
        body: { instances: night },
        path: 'batch_size',
      },
      { url: `${RECALIBRATE}?activate=maybe`, body: { instances: night }, path: 'query.activate' },
      { url: `${RECALIBRATE}?colour=blue`, body: { instances: night }, path: 'query.colour' },
    ];
    for (const c of cases) {
      const res = await recalibrate(t, c.body, c.url ? { url: c.url } : {});
      const body = expectProblem(res, 400, 'INVALID_INPUT');
      expect(
        body.errors?.map((e) => e.path),
        res.body,
      ).toContain(c.path);
    }
    const text = await recalibrate(t, 'a,b\n1,2\n', {
      headers: { ...ADMIN, 'content-type': 'text/plain' },
    });
    expect(expectProblem(text, 415, 'UNSUPPORTED_MEDIA_TYPE').detail).toBe(
      'unsupported Content-Type; this route accepts application/json, application/x-www-form-urlencoded (read as JSON), application/x-ndjson, text/csv, application/octet-stream',
    );
    const ok = await recalibrate(t, { instances: night.slice(0, 20), activate: false });
    expect(ok.statusCode, ok.body).toBe(201);
  });

  it('an option of another mode → 400 in the CLI’s words (read by nothing, not ignored); nothing published', async () => {
    const before = versionDirs(t.repository);
    const cases: { url?: string; body: unknown; detail: string }[] = [
      {
        url: `${RECALIBRATE}?batch_size=64`,
        body: night,
        detail: 'batch_size needs mode running (the mode is exact, the default)',
      },
      {
        body: { instances: night, mode: 'exact', batch_size: 64 },
        detail: 'batch_size needs mode running (the mode is exact)',
      },
      {
        url: `${RECALIBRATE}?mode=prior&batch_size=64`,
        body: night,
        detail: 'batch_size needs mode running (the mode is prior)',
      },
      {
        body: { instances: night, prior_strength: 32 },
        detail: 'prior_strength needs mode prior (the mode is exact, the default)',
      },
      {
        url: `${RECALIBRATE}?mode=running&prior_strength=32`,
        body: night,
        detail: 'prior_strength needs mode prior (the mode is running)',
      },
    ];
    for (const c of cases) {
      const streamed = Array.isArray(c.body);
      const res = await recalibrate(t, streamed ? ndjsonBody(c.body as number[][]) : c.body, {
        ...(c.url ? { url: c.url } : {}),
        ...(streamed ? { headers: NDJSON } : {}),
      });
      const body = expectProblem(res, 400, 'INVALID_INPUT');
      expect(body.detail).toBe(c.detail);
      // Where the option was found, as the schemas name it: the body's key, or `query.` before it.
      const name = c.detail.split(' ')[0]!;
      expect(body.errors?.[0]?.path).toBe(c.url?.includes(`${name}=`) ? `query.${name}` : name);
    }
    expect(versionDirs(t.repository)).toEqual(before);
  });
});

describe('recalibration errors (MAX_RECALIBRATION_SAMPLES=10)', () => {
  let t: TestApp;
  const row = (i: number) => night[i]!;
  const rows = (n: number) => night.slice(0, n);
  beforeAll(async () => {
    t = await makeTestApp({ env: { ...UNLIMITED, MAX_RECALIBRATION_SAMPLES: '10' } });
  });
  afterAll(async () => {
    await t.close();
  });

  const jsonText = (cells: string[][]) =>
    `{"instances":[${cells.map((r) => `[${r.join(',')}]`).join(',')}]}`;
  const cellsWith = (r: number, c: number, value: string): string[][] =>
    rows(3).map((values, i) => values.map((v, j) => (i === r && j === c ? value : String(v))));

  it('one sample → 400 "need at least 2 samples: one sample gives BatchNorm 1 (BatchNorm1d, input [128]) one value per channel, which has no variance" (every format)', async () => {
    const message =
      'need at least 2 samples: one sample gives BatchNorm 1 (BatchNorm1d, input [128]) one value per channel, which has no variance';
    for (const res of [
      await recalibrate(t, { instances: [row(0)] }),
      await recalibrate(t, ndjsonBody([row(0)]), { headers: NDJSON }),
      await recalibrate(t, float32Body([row(0)]), { headers: FLOAT32 }),
      await recalibrate(t, csvBody([row(0)]), { headers: CSV }),
    ]) {
      const body = expectProblem(res, 400, 'TOO_FEW_SAMPLES', RECALIBRATE);
      expect(body.detail).toBe(message);
    }
  });

  it('no rows → 400 TOO_FEW_SAMPLES saying the upload held none (every format)', async () => {
    const message = 'no rows were received (an empty upload): need at least 2 samples';
    for (const res of [
      await recalibrate(t, { instances: [] }),
      await recalibrate(t, '', { headers: NDJSON }),
      await recalibrate(t, Buffer.alloc(0), { headers: FLOAT32 }),
      await recalibrate(t, '', { headers: CSV }),
    ]) {
      const body = expectProblem(res, 400, 'TOO_FEW_SAMPLES', RECALIBRATE);
      expect(body.detail).toBe(message);
    }
  });

  it('too few rows with Prefer: respond-async → the same 400 at once, not a job that can only fail (every format)', async () => {
    const prefer = { prefer: 'respond-async' };
    // Before, 202 and a job that failed TOO_FEW_SAMPLES (the attacker of 2026-12-05).
    for (const res of [
      await recalibrate(t, { instances: [] }, { headers: { ...ADMIN, ...prefer } }),
      await recalibrate(t, { instances: [row(0)] }, { headers: { ...ADMIN, ...prefer } }),
      await recalibrate(t, '', { headers: { ...NDJSON, ...prefer } }),
      await recalibrate(t, Buffer.alloc(0), { headers: { ...FLOAT32, ...prefer } }),
      await recalibrate(t, csvBody([row(0)]), { headers: { ...CSV, ...prefer } }),
    ]) {
      expect(res.headers.location).toBeUndefined();
      expectProblem(res, 400, 'TOO_FEW_SAMPLES', RECALIBRATE);
    }
    // Enough rows are still a job: 'Prefer: respond-async → 202, the job succeeds' below.
  });

  it('JSON: strings, null, booleans, 1e999 and wrong widths → 400 naming instances[i][j] / instances[i]', async () => {
    const cases: { payload: string; path: string; message?: RegExp }[] = [
      { payload: jsonText(cellsWith(1, 5, '"7"')), path: 'instances[1][5]' },
      { payload: jsonText(cellsWith(2, 0, '"NaN"')), path: 'instances[2][0]' },
      { payload: jsonText(cellsWith(0, 63, 'null')), path: 'instances[0][63]' },
      { payload: jsonText(cellsWith(1, 1, 'true')), path: 'instances[1][1]' },
      { payload: jsonText(cellsWith(1, 63, '1e999')), path: 'instances[1][63]' },
      { payload: jsonText(cellsWith(2, 4, '-1e999')), path: 'instances[2][4]' },
      {
        payload: jsonText([...rows(1).map((r) => r.map(String)), rows(1)[0]!.slice(1).map(String)]),
        path: 'instances[1]',
        message: /expected 64 values, got 63/,
      },
    ];
    for (const c of cases) {
      const res = await recalibrate(t, c.payload, {
        headers: { ...ADMIN, 'content-type': 'application/json' },
      });
      const body = expectProblem(res, 400, 'INVALID_INPUT');
      expect(body.errors?.[0]?.path, res.body).toBe(c.path);
      expect(body.detail).toContain(c.path);
      if (c.message) expect(body.detail).toMatch(c.message);
    }
  });

  it('JSON: a finite number beyond float32 range (1e39) → 400 naming instances[i][j]', async () => {
    const res = await recalibrate(t, jsonText(cellsWith(1, 63, '1e39')), {
      headers: { ...ADMIN, 'content-type': 'application/json' },
    });
    const body = expectProblem(res, 400, 'INVALID_INPUT');
    expect(body.errors?.[0]?.path, res.body).toBe('instances[1][63]');
  });

  it('NDJSON: bad values, bad JSON and wrong widths → 400 naming line N', async () => {
    const lines = rows(3).map((r) => JSON.stringify(r));
    const replace = (i: number, text: string) =>
      lines.map((l, k) => (k === i ? text : l)).join('\n');
    const cases: { payload: string; path: string; message?: RegExp }[] = [
      {
        payload: replace(1, JSON.stringify([...row(1).slice(0, 5), '7', ...row(1).slice(6)])),
        path: 'line 2[5]',
      },
      { payload: replace(2, `[${row(2).slice(0, 63).join(',')},NaN]`), path: 'line 3' },
      { payload: replace(0, `[${row(0).slice(0, 63).join(',')},null]`), path: 'line 1[63]' },
      {
        payload: replace(1, JSON.stringify(row(1).slice(1))),
        path: 'line 2',
        message: /expected 64 values, got 63/,
      },
      { payload: replace(2, '{"x":1}'), path: 'line 3' },
      // A blank line still counts: the bad row is line 3 of the file.
      { payload: `${lines[0]}\n\n${JSON.stringify(row(1).slice(2))}\n`, path: 'line 3' },
    ];
    for (const c of cases) {
      const res = await recalibrate(t, c.payload, { headers: NDJSON });
      const body = expectProblem(res, 400, 'INVALID_INPUT');
      expect(body.errors?.[0]?.path, res.body).toBe(c.path);
      expect(body.detail).toContain(c.path);
      if (c.message) expect(body.detail).toMatch(c.message);
    }
  });

  it('NDJSON: a finite number beyond float32 range (1e39) → 400 naming line N[j]', async () => {
    const lines = rows(3).map((r) => JSON.stringify(r));
    lines[1] = `[${row(1).slice(0, 63).join(',')},1e39]`;
    const res = await recalibrate(t, lines.join('\n'), { headers: NDJSON });
    const body = expectProblem(res, 400, 'INVALID_INPUT');
    expect(body.errors?.[0]?.path, res.body).toBe('line 2[63]');
  });

  it('float32: NaN/Infinity → 400 naming row and column; a length not a multiple of 256 bytes → 400', async () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const body = float32Body(rows(3));
      body.writeFloatLE(bad, (1 * 64 + 6) * 4);
      const res = await recalibrate(t, body, { headers: FLOAT32 });
      const problem = expectProblem(res, 400, 'INVALID_INPUT');
      expect(problem.detail).toMatch(/row 1, column 6/);
    }
    for (const extra of [1, 4, 255]) {
      const res = await recalibrate(t, Buffer.concat([float32Body(rows(3)), Buffer.alloc(extra)]), {
        headers: FLOAT32,
      });
      const problem = expectProblem(res, 400, 'INVALID_INPUT');
      expect(problem.detail).toMatch(/not a multiple of 256 bytes/);
    }
  });

  it('more than MAX_RECALIBRATION_SAMPLES rows → 413 TOO_MANY_SAMPLES (NDJSON, float32)', async () => {
    expectProblem(
      await recalibrate(t, ndjsonBody(rows(11)), { headers: NDJSON }),
      413,
      'TOO_MANY_SAMPLES',
    );
    expectProblem(
      await recalibrate(t, float32Body(rows(11)), { headers: FLOAT32 }),
      413,
      'TOO_MANY_SAMPLES',
    );
    // exactly the limit is fine
    const ok = await recalibrate(t, float32Body(rows(10)), {
      url: `${RECALIBRATE}?activate=false`,
      headers: FLOAT32,
    });
    expect(ok.statusCode, ok.body).toBe(201);
    const v = ok.json<Outcome>().version;
    const del = await t.app.inject({
      method: 'DELETE',
      url: `/v1/models/digits/versions/${v}`,
      headers: ADMIN,
    });
    expect(del.statusCode).toBe(200);
  });

  it('more than MAX_RECALIBRATION_SAMPLES rows as JSON → 413 TOO_MANY_SAMPLES too (not 400)', async () => {
    const res = await recalibrate(t, { instances: rows(11) });
    expectProblem(res, 413, 'TOO_MANY_SAMPLES');
  });

  it('unknown model → 404 MODEL_NOT_FOUND', async () => {
    for (const res of [
      await recalibrate(t, { instances: rows(3) }, { url: '/v1/models/nope:recalibrate' }),
      await recalibrate(t, ndjsonBody(rows(3)), {
        url: '/v1/models/nope:recalibrate',
        headers: NDJSON,
      }),
    ]) {
      const body = expectProblem(res, 404, 'MODEL_NOT_FOUND');
      expect(body.detail).toContain('nope');
    }
  });

  it('left nothing behind: no new version, no temporaries, version 1 active, model not locked', async () => {
    expect(versionDirs(t.repository)).toEqual([1]);
    expect(await leftoverTemporaries(t.repository)).toEqual([]);
    const ok = await recalibrate(t, { instances: rows(10) });
    expect(ok.statusCode, ok.body).toBe(201);
    // Version 2 was published and deleted above: its number is retired, never given out again.
    expect(ok.json<Outcome>().version).toBe(3);
  });
});

describe('models without BatchNorm → 422', () => {
  let repository: string;
  let t: TestApp;
  beforeAll(async () => {
    repository = makeRepository(['digits']);
    const repo = new ModelRepository(repository);
    const configs: ModelConfig[] = [
      parseModelConfig({
        format: 'normserve.model/v1',
        name: 'plain',
        task: 'classification',
        input_shape: [4],
        labels: ['a', 'b'],
        layers: [
          { type: 'linear', in_features: 4, out_features: 8, bias: true },
          { type: 'relu' },
          { type: 'linear', in_features: 8, out_features: 2, bias: true },
        ],
      }),
      parseModelConfig({
        format: 'normserve.model/v1',
        name: 'layernormed',
        task: 'regression',
        input_shape: [4],
        layers: [
          { type: 'linear', in_features: 4, out_features: 8, bias: true },
          { type: 'layernorm', normalized_shape: [8], eps: 1e-5, elementwise_affine: true },
          { type: 'linear', in_features: 8, out_features: 1, bias: true },
        ],
      }),
    ];
    for (const config of configs) {
      const network = buildSequential(config.layers, { init: new Rng(7) });
      await repo.publishVersion({ config, state: network.stateDict() });
    }
    t = await makeTestApp({ repository, env: UNLIMITED });
  });
  afterAll(async () => {
    await t.close();
    rmSync(repository, { recursive: true, force: true });
  });

  it('POST :recalibrate on a model with no BatchNorm → 422 NOT_RECALIBRATABLE, nothing published', async () => {
    const four = [
      [1, 2, 3, 4],
      [2, 3, 4, 5],
      [0, 1, 0, 1],
    ];
    for (const name of ['plain', 'layernormed']) {
      const predict = await t.app.inject({
        method: 'POST',
        url: `/v1/models/${name}:predict`,
        payload: { instances: four },
      });
      expect(predict.statusCode, predict.body).toBe(200);
      for (const res of [
        await recalibrate(t, { instances: four }, { url: `/v1/models/${name}:recalibrate` }),
        await recalibrate(t, ndjsonBody(four), {
          url: `/v1/models/${name}:recalibrate`,
          headers: NDJSON,
        }),
      ]) {
        const body = expectProblem(res, 422, 'NOT_RECALIBRATABLE');
        expect(body.detail).toContain(name);
      }
      expect(readdirSync(join(repository, name))).toEqual(['1']);
    }
  });
});

describe('DELETE /v1/models/{name}/versions/{v}', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ env: UNLIMITED });
  });
  afterAll(async () => {
    await t.close();
  });

  it('the active version → 409; another → 200 and gone from disk and listing', async () => {
    const res = await recalibrate(t, { instances: night });
    expect(res.statusCode).toBe(201);
    const active = await t.app.inject({
      method: 'DELETE',
      url: '/v1/models/digits/versions/2',
      headers: ADMIN,
    });
    const problem = expectProblem(active, 409, 'ACTIVE_VERSION_DELETE');
    expect(problem.detail).toMatch(/active version/);
    expect(existsSync(join(t.repository, 'digits', '2', 'model.safetensors'))).toBe(true);

    const v1 = await t.app.inject({
      method: 'DELETE',
      url: '/v1/models/digits/versions/1',
      headers: ADMIN,
    });
    expect(v1.statusCode, v1.body).toBe(200);
    expect(v1.json()).toMatchObject({
      deleted_version: 1,
      model: { name: 'digits', active_version: 2, versions: [{ version: 2, active: true }] },
    });
    expect(existsSync(join(t.repository, 'digits', '1'))).toBe(false);
    expect(await leftoverTemporaries(t.repository)).toEqual([]);
    expect((await modelListing(t)).versions.map((v) => v.version)).toEqual([2]);

    expectProblem(
      await t.app.inject({ method: 'DELETE', url: '/v1/models/digits/versions/1', headers: ADMIN }),
      404,
      'VERSION_NOT_FOUND',
    );
    expectProblem(
      await t.app.inject({
        method: 'POST',
        url: '/v1/models/digits/versions/1:activate',
        headers: ADMIN,
      }),
      404,
      'VERSION_NOT_FOUND',
    );
    const explicit = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits/versions/1:predict',
      payload: { instances: night.slice(0, 1) },
    });
    expectProblem(explicit, 404, 'VERSION_NOT_FOUND');
    expect((await predictRows(t.app, 'digits', night.slice(0, 3))).model_version).toBe(2);
  });
});

describe('jobs: 202 + Location /v1/jobs/{id}', () => {
  it('a finished job’s progress is every row of the total, whatever the mode and the batches', async () => {
    // h251: a running recalibration whose batches ended with the upload finished with
    // `total_rows: null`, its last report the upload's.
    const t = await makeTestApp({ env: UNLIMITED });
    try {
      for (const body of [
        { instances: night, mode: 'running', batch_size: 8 },
        { instances: night, mode: 'running', batch_size: 7 },
        { instances: night },
      ]) {
        const res = await recalibrate(t, body, {
          headers: { ...ADMIN, prefer: 'respond-async, wait=0' },
        });
        expect(res.statusCode, res.body).toBe(202);
        const job = await pollJob(t, res.headers.location as string);
        expect(job.state).toBe('succeeded');
        expect(job.progress).toEqual({ rows: 360, total_rows: 360 });
      }
    } finally {
      await t.close();
    }
  });

  it('Prefer: respond-async → 202, the job succeeds with the new version', async () => {
    const t = await makeTestApp({ env: UNLIMITED });
    try {
      const res = await recalibrate(
        t,
        { instances: night, note: 'async' },
        {
          headers: { ...ADMIN, prefer: 'respond-async, wait=0' },
        },
      );
      expect(res.statusCode, res.body).toBe(202);
      expect(res.headers['preference-applied']).toBe('respond-async');
      const location = res.headers.location as string;
      expect(location).toMatch(/^\/v1\/jobs\/[0-9a-f-]{36}$/);
      const accepted = res.json<{ job_id: string; state: string; location: string }>();
      expect(accepted.location).toBe(location);
      expect(location).toBe(`/v1/jobs/${accepted.job_id}`);
      const job = await pollJob(t, location);
      expect(job).toMatchObject({
        id: accepted.job_id,
        kind: 'recalibration',
        model: 'digits',
        state: 'succeeded',
        result: {
          version: 2,
          parent_version: 1,
          samples: 360,
          activated: true,
          job_id: accepted.job_id,
        },
      });
      expect(job.progress.rows).toBe(360);
      expect((await predictRows(t.app, 'digits', night.slice(0, 2))).model_version).toBe(2);
      expect(versionConfig(t.repository, 'digits', 2).provenance).toMatchObject({ note: 'async' });

      // RFC 9562 §4: a UUID's hex digits are case-insensitive on input; in capitals, the same job.
      const upper = await t.app.inject({
        method: 'GET',
        url: `/v1/jobs/${accepted.job_id.toUpperCase()}`,
        headers: ADMIN,
      });
      expect(upper.statusCode, upper.body).toBe(200);
      expect(upper.json()).toEqual(job);

      // An asynchronous failure is recorded in the job, and publishes nothing: two rows alike
      // leave the BatchNorms no variance, which only the computation finds (too few rows to
      // compute at all are refused at once, below).
      const one = await recalibrate(
        t,
        { instances: [night[0], night[0]] },
        {
          headers: { ...ADMIN, prefer: 'respond-async' },
        },
      );
      expect(one.statusCode).toBe(202);
      const failed = await pollJob(t, one.headers.location as string);
      expect(failed.state).toBe('failed');
      expect(failed.error).toMatchObject({ code: 'TOO_FEW_SAMPLES' });
      expect(failed.result).toBeUndefined();
      expect(existsSync(join(t.repository, 'digits', '3'))).toBe(false);

      // Only a preference named respond-async asks for a job (RFC 7240 §2), not a longer name
      // or a value that holds those letters.
      for (const prefer of ['x-respond-async', 'handling="respond-async"']) {
        const sync = await recalibrate(
          t,
          { instances: night, activate: false },
          { headers: { ...ADMIN, prefer } },
        );
        expect(sync.statusCode, prefer).toBe(201);
        expect(sync.headers['preference-applied']).toBeUndefined();
      }

      const unknown = await t.app.inject({
        method: 'GET',
        url: '/v1/jobs/00000000-0000-4000-8000-000000000000',
        headers: ADMIN,
      });
      expectProblem(unknown, 404, 'JOB_NOT_FOUND');
    } finally {
      await t.close();
    }
  });

  it('more rows than RECALIBRATION_ASYNC_ROWS (100) → 202 without Prefer; fewer → 201', async () => {
    const t = await makeTestApp({ env: { ...UNLIMITED, RECALIBRATION_ASYNC_ROWS: '100' } });
    try {
      const res = await recalibrate(t, ndjsonBody(night), { headers: NDJSON });
      expect(res.statusCode, res.body).toBe(202);
      expect(res.headers['preference-applied']).toBeUndefined();
      const job = await pollJob(t, res.headers.location as string);
      expect(job.state).toBe('succeeded');
      expect(job.result).toMatchObject({
        version: 2,
        samples: 360,
        data_sha256: rowsSha256(night),
      });
      const small = await recalibrate(t, { instances: night.slice(0, 100) });
      expect(small.statusCode, small.body).toBe(201);
      expect(small.json<Outcome>().version).toBe(3);
    } finally {
      await t.close();
    }
  });
});

describe('closing the app', () => {
  it('waits for running jobs and job records: nothing is written into the repository after close()', async () => {
    for (let round = 0; round < 3; round++) {
      const t = await makeTestApp({ env: UNLIMITED });
      const ok = await recalibrate(t, { instances: night });
      expect(ok.statusCode, ok.body).toBe(201);
      const failed = await recalibrate(t, { instances: night.slice(0, 1) });
      expect(failed.statusCode).toBe(400);
      const background = await recalibrate(
        t,
        { instances: night, activate: false },
        {
          headers: { ...ADMIN, prefer: 'respond-async' },
        },
      );
      expect(background.statusCode).toBe(202);
      await t.close(); // closes the app, then removes the repository
      await new Promise((resolve) => setTimeout(resolve, 300));
      const recreated = existsSync(t.repository) ? listTree(t.repository) : null;
      rmSync(t.repository, { recursive: true, force: true });
      expect(recreated, `round ${round}: ${t.repository} was written after close()`).toBeNull();
    }
  });
});

describe('one recalibration per model at a time (409 with the running job)', () => {
  let t: TestApp;
  let port = 0;
  beforeAll(async () => {
    t = await makeTestApp({
      models: ['digits', 'digits-torch'],
      env: UNLIMITED,
    });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    port = (t.app.server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await t.close();
  });

  /** Starts a streamed NDJSON upload over a real connection; the body is written by the caller. */
  function startUpload(headers: Record<string, string> = NDJSON) {
    return streamedUpload(port, RECALIBRATE, headers);
  }

  /**
   * Waits until the upload holds the model's lock, by watching the lock file (probing with
   * requests would race with the upload for the lock), and returns the holder: the upload's job.
   */
  async function waitForLock(): Promise<string> {
    const path = join(t.repository, 'digits', '.recalibration.lock');
    return waitFor(() => {
      try {
        return (JSON.parse(readFileSync(path, 'utf8')) as { owner: string }).owner;
      } catch {
        return undefined;
      }
    }, 'the upload to take the lock');
  }

  it('a refused chunk is answered while the client is still sending: 400 naming the row, the model released', async () => {
    // A whole chunk of the reader (4,096 rows) with a NaN, then a few rows of the next one, and
    // the client stalls: the refusal must not wait for the next chunk to fill.
    const rows = Array.from({ length: 4_106 }, (_, i) => night[i % night.length]!);
    const bad = rows.map((r) => [...r]);
    bad[100]![3] = Number.NaN;
    const { req, response } = startUpload(FLOAT32);
    try {
      req.write(float32Body(bad));
      const stalledMs = 30_000; // a generous bound: the answer needs no more bytes
      const answer = await Promise.race([
        response,
        new Promise<'stalled'>((resolve) => setTimeout(() => resolve('stalled'), stalledMs)),
      ]);
      expect(answer).not.toBe('stalled');
      const { status, body } = answer as { status: number; body: string };
      expect(status, body).toBe(400);
      expect((JSON.parse(body) as { detail: string }).detail).toMatch(/row 100, column 3/);
    } finally {
      req.destroy();
    }
    // The session failed before the answer: the model's lock is gone (nothing published here,
    // so the versions of the next test stay as they are).
    expect(existsSync(join(t.repository, 'digits', '.recalibration.lock'))).toBe(false);
  });

  it('a second POST while an upload streams → 409 with job_id; after it finishes, a new one succeeds', async () => {
    const { req, response } = startUpload();
    try {
      req.write(
        `${night
          .slice(0, 10)
          .map((r) => JSON.stringify(r))
          .join('\n')}\n`,
      );
      const jobId = await waitForLock();

      const second = await recalibrate(t, { instances: night });
      const problem = expectProblem(second, 409, 'RECALIBRATION_IN_PROGRESS');
      expect(problem.job_id).toBe(jobId);
      expect(problem.detail).toContain(jobId);
      const viaNdjson = await recalibrate(t, ndjsonBody(night), { headers: NDJSON });
      expect(expectProblem(viaNdjson, 409, 'RECALIBRATION_IN_PROGRESS').job_id).toBe(jobId);

      const job = await t.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: ADMIN });
      expect(job.json()).toMatchObject({
        id: jobId,
        model: 'digits',
        state: 'running',
        phase: 'receiving',
      });
      // The 10 rows sent so far show in the progress, though the reader's chunk (4,096 rows) is
      // not full, and so in the record other processes read too.
      const readRows = async (): Promise<number> =>
        (
          (
            await t.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: ADMIN })
          ).json() as JobBody
        ).progress.rows;
      await waitFor(async () => ((await readRows()) === 10 ? true : undefined), 'progress.rows 10');
      // Written behind the answer: absent for a moment after the job starts.
      const record = join(t.repository, '.jobs', `${jobId}.json`);
      const recorded = await waitFor(() => {
        if (!existsSync(record)) return undefined;
        const { progress } = JSON.parse(readFileSync(record, 'utf8')) as JobBody;
        return progress.rows === 10 ? progress : undefined;
      }, "the record's rows 10");
      expect(recorded.total_rows).toBeNull();

      // The lock is per model: another model recalibrates meanwhile, and predictions go on.
      const other = await recalibrate(
        t,
        { instances: night },
        { url: '/v1/models/digits-torch:recalibrate' },
      );
      expect(other.statusCode, other.body).toBe(201);
      expect((await predictRows(t.app, 'digits', night.slice(0, 2))).model_version).toBe(1);

      req.end(
        `${night
          .slice(10)
          .map((r) => JSON.stringify(r))
          .join('\n')}\n`,
      );
      const first = await response;
      expect(first.status, first.body).toBe(201);
      const outcome = JSON.parse(first.body) as Outcome;
      expect(outcome).toMatchObject({
        version: 2,
        samples: 360,
        job_id: jobId,
        data_sha256: rowsSha256(night),
      });

      const after = await recalibrate(t, { instances: night, activate: false });
      expect(after.statusCode, after.body).toBe(201);
      expect(after.json<Outcome>().version).toBe(3);
    } finally {
      req.destroy();
    }
  });

  it('an upload dropped mid-way fails its job as CLIENT_ABORTED (not INTERNAL), counted as 499, and releases the model', async () => {
    const { req, response } = startUpload();
    response.catch(() => undefined);
    req.write(
      `${night
        .slice(0, 10)
        .map((r) => JSON.stringify(r))
        .join('\n')}\n`,
    );
    const jobId = await waitForLock().finally(() => req.destroy());
    const job = await waitFor(
      async () => {
        const res = await t.app.inject({ method: 'GET', url: `/v1/jobs/${jobId}`, headers: ADMIN });
        // The lock is taken a moment before the job is recorded: 404 until then.
        if (res.statusCode === 404) return undefined;
        const body = res.json<JobBody>();
        return body.state === 'running' ? undefined : body;
      },
      'the dropped upload to fail its job',
      10_000,
    );
    expect(job.state).toBe('failed');
    expect(job.error?.code).toBe('CLIENT_ABORTED');
    const metrics = (await t.app.inject({ url: '/metrics' })).body;
    expect(metrics).toMatch(
      /^normserve_http_requests_total\{method="POST",route="\/v1\/models\/\{name\}:recalibrate",status="499",[^}]*\} 1$/m,
    );
    expect(metrics).not.toMatch(/^normserve_http_requests_total\{[^}]*status="5\d\d"/m);
    const next = await recalibrate(t, { instances: night, activate: false });
    expect(next.statusCode, next.body).toBe(201);
    expect(next.json<Outcome>().version).toBe(4);
    expect(versionDirs(t.repository)).toEqual([1, 2, 3, 4]);
    expect(await leftoverTemporaries(t.repository)).toEqual([]);
  });
});

describe('PyTorch equivalence through HTTP (digits-torch on the night rows)', () => {
  interface TensorJson {
    shape: number[];
    data: number[];
  }
  const fixture = JSON.parse(
    readFileSync('test/fixtures/torch-model/recalibration.json', 'utf8'),
  ) as {
    labels: number[];
    batchnorms: {
      running_mean_key: string;
      running_var_key: string;
      running_mean: TensorJson;
      running_var: TensorJson;
    }[];
    recalibrated: { predictions: number[] };
  };
  const running = JSON.parse(
    readFileSync('test/fixtures/torch-model/recalibration-running.json', 'utf8'),
  ) as {
    batch_size: number;
    num_batches: number;
    batchnorms: {
      running_mean_key: string;
      running_var_key: string;
      running_mean: TensorJson;
      running_var: TensorJson;
    }[];
  };
  const reference = JSON.parse(
    readFileSync('test/fixtures/torch-model/reference-float64.json', 'utf8'),
  ) as { recalibrated: { logits: TensorJson } };
  /** Each BatchNorm's eps by its state-dict prefix, from digits-torch's own config.json. */
  const epsOf = new Map(
    namedModules(loadModel('test/fixtures/torch-model/digits-torch/1').network)
      .filter((e): e is [string, BatchNorm] => e[1] instanceof BatchNorm)
      .map(([path, bn]) => [path, bn.eps]),
  );
  const bnEps = (runningMeanKey: string): number => {
    const eps = epsOf.get(runningMeanKey.replace(/\.running_mean$/, ''));
    if (eps === undefined) throw new Error(`no BatchNorm for ${runningMeanKey} in digits-torch`);
    return eps;
  };
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp({ models: ['digits-torch'], env: UNLIMITED });
  });
  afterAll(async () => {
    await t.close();
  });

  it('exact: running stats equal PyTorch within BN_STATISTICS_TOL, served probabilities the float64 reference within OUTPUT_ATOL', async () => {
    expect(fixture.labels).toEqual(test.y);
    const res = await recalibrate(
      t,
      { instances: night },
      { url: '/v1/models/digits-torch:recalibrate' },
    );
    expect(res.statusCode, res.body).toBe(201);
    const { version } = res.json<Outcome>();
    const tensors = versionTensors(t.repository, 'digits-torch', version);
    for (const bn of fixture.batchnorms) {
      expectStatisticsClose(
        {
          mean: tensors.get(bn.running_mean_key)!.values!,
          variance: tensors.get(bn.running_var_key)!.values!,
        },
        { mean: bn.running_mean.data, variance: bn.running_var.data },
        bnEps(bn.running_mean_key),
        bn.running_mean_key,
      );
    }
    const served = await predictRows(t.app, 'digits-torch', night);
    expect(served.model_version).toBe(version);
    const expected = softmax64(reference.recalibrated.logits.data, 10);
    expectClose(served.predictions.flat(), expected, OUTPUT_ATOL, 'recalibrated probabilities');
    expect(served.labels.map(Number)).toEqual(fixture.recalibrated.predictions);
  });

  it('running (float32 upload, batch_size 64): running stats equal PyTorch within BN_STATISTICS_TOL', async () => {
    const res = await recalibrate(t, float32Body(night), {
      url: `/v1/models/digits-torch:recalibrate?mode=running&batch_size=${running.batch_size}&activate=false`,
      headers: FLOAT32,
    });
    expect(res.statusCode, res.body).toBe(201);
    const outcome = res.json<Outcome>();
    expect(outcome.batches).toBe(running.num_batches);
    const tensors = versionTensors(t.repository, 'digits-torch', outcome.version);
    for (const bn of running.batchnorms) {
      expectStatisticsClose(
        {
          mean: tensors.get(bn.running_mean_key)!.values!,
          variance: tensors.get(bn.running_var_key)!.values!,
        },
        { mean: bn.running_mean.data, variance: bn.running_var.data },
        bnEps(bn.running_mean_key),
        bn.running_mean_key,
      );
    }
  });
});
