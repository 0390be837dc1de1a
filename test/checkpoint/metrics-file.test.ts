/**
 * metrics.json has one schema (src/checkpoint/metrics-file.ts) for its writers and its reader:
 * what training writes, in both tasks, reads back unchanged; the bundled files are of the
 * training format; a file that is not UTF-8 JSON of a known format reads as none, and its version
 * still serves with `metrics: null` in its metadata.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  METRICS_FILE,
  parseMetricsFile,
  serializeCheckpoint,
  trainingMetricsSchema,
} from '../../src/checkpoint/index.js';
import { loadCsvDataset, parseTrainingConfig, train } from '../../src/training/index.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { BUNDLED_MODEL_NAMES, bundledVersionDir } from '../helpers/bundled-models.js';

const IRIS = fileURLToPath(new URL('../../data/iris/iris.csv', import.meta.url));

async function trained(task: 'classification' | 'regression') {
  const target = task === 'classification' ? 'label' : 'petal_width';
  const data = await loadCsvDataset(IRIS, target, task);
  const config = parseTrainingConfig(
    {
      name: 'iris-metrics',
      task,
      seed: 3,
      data: {
        path: IRIS,
        label_column: target,
        test_split: { fraction: 0.2 },
        validation_fraction: 0.1,
      },
      training: { epochs: 2, batch_size: 16, patience: 5 },
    },
    'iris-metrics.json',
  );
  return train({ config, data: data.data, dataSha256: data.sha256, now: () => 0 });
}

describe('metrics.json written by training', () => {
  for (const task of ['classification', 'regression'] as const) {
    it(`${task}: every field is in the schema and reads back unchanged`, async () => {
      const out = await trained(task);
      // strict(): a field the trainer writes but the schema lacks would fail here.
      expect(() => trainingMetricsSchema.strict().parse(out.metrics)).not.toThrow();
      const file = serializeCheckpoint(out).get(METRICS_FILE)!;
      expect(parseMetricsFile(file)).toEqual(out.metrics);
      if (task === 'regression') expect(out.metrics.test).toHaveProperty('rmse');
    });
  }

  it('the bundled models have training metrics', () => {
    for (const name of BUNDLED_MODEL_NAMES) {
      const bytes = readFileSync(join(bundledVersionDir(name), METRICS_FILE));
      expect(parseMetricsFile(bytes)?.format, name).toBe('normserve.metrics/v1');
    }
  });
});

describe('a metrics.json of no known format', () => {
  const text = (s: string) => new TextEncoder().encode(s);
  it.each([
    ['not JSON', text('{"format": "normserve.metrics/v1",')],
    ['not UTF-8', Uint8Array.of(0xff, 0xfe, 0x7b, 0x7d)],
    ['another format', text('{"format": "someone-else/v2", "loss": 1}')],
    ['no format', text('{"test": {"loss": 1, "accuracy": 0.5, "rows": 3}}')],
    ['a recalibration without its fields', text('{"format": "normserve.recalibration/v1"}')],
  ])('%s reads as none', (_, bytes) => {
    expect(parseMetricsFile(bytes)).toBeUndefined();
  });

  let t: TestApp;
  beforeAll(async () => {
    const root = makeRepository(['digits']);
    const dir = join(root, 'foreign', '1');
    cpSync(bundledVersionDir('digits'), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, name: 'foreign' }));
    writeFileSync(join(dir, METRICS_FILE), '{"format": "someone-else/v2", "loss": 1}');
    t = await makeTestApp({ repository: root });
  });
  afterAll(async () => {
    await t.close();
  });

  it('leaves its version serving, with metrics null in the metadata', async () => {
    const meta = await t.app.inject({ method: 'GET', url: '/v1/models/foreign/metadata' });
    expect(meta.statusCode).toBe(200);
    expect(meta.json().metrics).toBeNull();
    const digits = await t.app.inject({ method: 'GET', url: '/v1/models/digits/metadata' });
    expect(digits.json().metrics).toMatchObject({ best_epoch: 39, seed: 42 });
  });
});
