import { afterEach, describe, expect, it } from 'vitest';
import { type DriftReport, parseServerConfig } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsTestRows } from '../helpers/digits.js';

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
