import { afterEach, describe, expect, it } from 'vitest';
import { type DriftReport, parseServerConfig } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';

let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const rows = digitsTestRows().x;

async function send(app: TestApp['app'], requests: number, perRequest = 1): Promise<void> {
  for (let i = 0; i < requests; i++) {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: { instances: rows.slice(i, i + perRequest) },
    });
    expect(res.statusCode).toBe(200);
  }
}

const report = async (app: TestApp['app']): Promise<DriftReport> =>
  (await app.inject({ method: 'GET', url: '/v1/models/digits/drift' })).json() as DriftReport;

describe('GET /v1/models/{name}/drift', () => {
  it('reports nothing before traffic, the rows after it, and 404s an unknown model', async () => {
    t = await makeTestApp();
    const empty = await report(t.app);
    expect(empty).toMatchObject({ model: 'digits', active_version: 1, active: null, versions: [] });
    expect(empty.auto_recalibration.mode).toBe('off');
    await send(t.app, 5, 3);
    const r = await report(t.app);
    expect(r.active).toMatchObject({ version: 1, rows: 15, recommended: false });
    expect(r.active!.layers.map((l) => l.path)).toEqual(['1', '5']);
    expect(r.active!.layers.every((l) => l.count === 15)).toBe(true);
    expect(r.active!.timeline.reduce((n, w) => n + w.rows, 0)).toBe(15);
    const missing = await t.app.inject({ method: 'GET', url: '/v1/models/nope/drift' });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(missing.json()).toMatchObject({ code: 'MODEL_NOT_FOUND' });
  });

  it('DRIFT_SAMPLE_FRACTION=0 gathers nothing; 0.5 about half of the engine calls', async () => {
    t = await makeTestApp({ env: { DRIFT_SAMPLE_FRACTION: '0' } });
    await send(t.app, 20);
    expect((await report(t.app)).active).toBeNull();
    await t.close();
    t = await makeTestApp({ env: { DRIFT_SAMPLE_FRACTION: '0.5' } });
    await send(t.app, 200);
    const r = await report(t.app);
    expect(r.sample_fraction).toBe(0.5);
    // Binomial(200, 0.5): sd ≈ 7; the seeded draw is well inside ±40.
    expect(r.active!.rows).toBeGreaterThan(60);
    expect(r.active!.rows).toBeLessThan(140);
  });

  it('statistics of dynamically batched calls count every row', async () => {
    t = await makeTestApp({ env: { BATCH_MAX_DELAY_US: '2000' } });
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        t!.app.inject({
          method: 'POST',
          url: '/v1/models/digits:predict',
          payload: { instances: [rows[i]] },
        }),
      ),
    );
    expect((await report(t.app)).active!.rows).toBe(12);
  });

  it('exports Prometheus gauges per model, version and layer', async () => {
    t = await makeTestApp();
    await send(t.app, 4);
    const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/^normserve_drift_score\{model="digits",version="1"\} [0-9.e-]+$/m);
    expect(text).toMatch(/^normserve_drift_layer_score\{model="digits",version="1",layer="5"\} /m);
    expect(text).toMatch(/^normserve_drift_rows\{model="digits",version="1"\} 4$/m);
    expect(text).toMatch(
      /^normserve_drift_recalibration_recommended\{model="digits",version="1"\} 0$/m,
    );
  });
});

describe('drift configuration', () => {
  it('is parsed with the server configuration', () => {
    const c = parseServerConfig({ DRIFT_SAMPLE_FRACTION: '0.25', AUTO_RECALIBRATE: 'promote' });
    expect(c.DRIFT_SAMPLE_FRACTION).toBe(0.25);
    expect(c.AUTO_RECALIBRATE).toBe('promote');
    expect(parseServerConfig({}).DRIFT_SAMPLE_FRACTION).toBe(1);
    expect(() => parseServerConfig({ DRIFT_SAMPLE_FRACTION: '1.5' })).toThrow(
      /DRIFT_SAMPLE_FRACTION/,
    );
    expect(() => parseServerConfig({ AUTO_RECALIBRATE: 'always' })).toThrow(/AUTO_RECALIBRATE/);
  });
});

describe('refused rows', () => {
  const float32Body = (batch: readonly (readonly number[])[]): Buffer =>
    Buffer.from(Float32Array.from(batch.flat()).buffer);
  const postBinary = (app: TestApp['app'], batch: readonly (readonly number[])[]) =>
    app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      headers: { 'content-type': 'application/octet-stream' },
      payload: float32Body(batch),
    });

  it('a row answered 400 (outputs overflow) feeds neither the drift windows nor the pictures', async () => {
    t = await makeTestApp();
    for (let i = 0; i < 200; i += 20) {
      expect((await postBinary(t.app, rows.slice(i, i + 20))).statusCode).toBe(200);
    }
    // A read folds the sums gathered so far; a refused call drops what was gathered since the
    // last fold (the taps cannot tell its rows apart), here its own row alone.
    expect((await report(t.app)).active!.rows).toBe(200);
    const huge = Array.from({ length: 64 }, () => 3e38);
    const refusals = [
      () => postBinary(t!.app, [huge]),
      () =>
        t!.app.inject({
          method: 'POST',
          url: '/v1/models/digits:predict',
          payload: { instances: [huge] },
        }),
      () =>
        t!.app.inject({
          method: 'POST',
          url: '/v2/models/digits/infer',
          payload: { inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', data: huge }] },
        }),
    ];
    for (const refuse of refusals) {
      const res = await refuse();
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({
        detail: expect.stringMatching(/outputs overflow float32/),
      });
      expect((await report(t.app)).active!.rows).toBe(200);
    }
    const night = nightShift(rows);
    for (let i = 0; i < 900; i += 30) {
      const batch = Array.from({ length: 30 }, (_, k) => night[(i + k) % night.length]!);
      expect((await postBinary(t.app, batch)).statusCode).toBe(200);
    }
    const r = (await report(t.app)).active!;
    expect(r.rows).toBe(1100);
    expect(r.layers.every((l) => l.score !== null && Number.isFinite(l.score))).toBe(true);
    expect(Number.isFinite(r.score)).toBe(true);
    expect(r.recommended).toBe(true);
    const pictures = await t.app.inject({ method: 'GET', url: '/v1/models/digits/drift/layers' });
    expect(pictures.statusCode).toBe(200);
    const text = pictures.body;
    expect(text).not.toMatch(/e\+3[0-9]/);
  });
});
