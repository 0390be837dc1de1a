/**
 * Issue 12's "must show" for drift on the bundled digits model: night-shifted traffic (the
 * README's night-shift rows) raises the drift score above the threshold within 200 requests and
 * "recommended" appears; after recalibrating to a new version, that version's drift on the same
 * traffic is back under the threshold; clean traffic never crosses it. One row per request, in a
 * seeded order.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Rng } from '../../src/nn/index.js';
import type { DriftReport } from '../../src/service/index.js';
import { ADMIN } from '../helpers/admin.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { digitsImage, digitsTestRows, nightShift } from '../helpers/digits.js';

const SEED = 12;
let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

/** `count` rows drawn from `rows` in a seeded order. */
function seededTraffic(rows: number[][], count: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => rows[rng.int(rows.length)]!);
}

async function predictOne(app: TestApp['app'], model: string, row: unknown): Promise<void> {
  const res = await app.inject({
    method: 'POST',
    url: `/v1/models/${model}:predict`,
    payload: { instances: [row] },
  });
  expect(res.statusCode).toBe(200);
}

async function drift(app: TestApp['app'], model: string): Promise<DriftReport> {
  const res = await app.inject({ method: 'GET', url: `/v1/models/${model}/drift` });
  expect(res.statusCode).toBe(200);
  return res.json() as DriftReport;
}

const models: { name: 'digits' | 'digits-cnn'; sample: (r: number[]) => unknown }[] = [
  { name: 'digits', sample: (r) => r },
  { name: 'digits-cnn', sample: (r) => digitsImage(r) },
];

describe.each(models)('live drift on $name', ({ name, sample }) => {
  it('clean traffic never crosses the threshold', async () => {
    t = await makeTestApp({ models: [name] });
    const traffic = seededTraffic(digitsTestRows().x, 400, SEED);
    let worst = 0;
    for (let i = 0; i < traffic.length; i++) {
      await predictOne(t.app, name, sample(traffic[i]!));
      if ((i + 1) % 10 === 0) {
        const report = await drift(t.app, name);
        expect(report.active!.recommended).toBe(false);
        worst = Math.max(worst, report.active!.rows >= report.min_rows ? report.active!.score : 0);
      }
    }
    const report = await drift(t.app, name);
    console.log(
      `${name}: clean traffic, 400 requests: score ${report.active!.score.toFixed(4)} (worst after ${report.min_rows} rows ${worst.toFixed(4)}, threshold ${report.threshold}); layers ${report.active!.layers.map((l) => `${l.path} ${l.score.toFixed(3)}`).join(', ')}`,
    );
    expect(report.active!.rows).toBe(400);
    expect(worst).toBeLessThan(report.threshold);
  });

  it('night traffic is recommended within 200 requests; the recalibrated version is back under', async () => {
    t = await makeTestApp({ models: [name] });
    const night = nightShift(digitsTestRows().x);
    const traffic = seededTraffic(night, 400, SEED + 1);
    let recommendedAt: number | undefined;
    for (let i = 0; i < 200; i++) {
      await predictOne(t.app, name, sample(traffic[i]!));
      const report = await drift(t.app, name);
      if (recommendedAt === undefined && report.active!.recommended) recommendedAt = i + 1;
    }
    const before = await drift(t.app, name);
    console.log(
      `${name}: night traffic: recommended after ${recommendedAt} requests; score after 200 ${before.active!.score.toFixed(4)}; layers ${before.active!.layers.map((l) => `${l.path} shift ${l.mean_shift.toFixed(3)} log-std ${l.log_std_ratio.toFixed(3)} score ${l.score.toFixed(3)}`).join(', ')}`,
    );
    expect(recommendedAt).toBeDefined();
    expect(recommendedAt!).toBeLessThanOrEqual(200);
    expect(recommendedAt!).toBeGreaterThanOrEqual(before.min_rows);
    expect(before.active!.version).toBe(1);

    // Recalibrate (the admin route) on the night rows, then the same traffic on version 2.
    const res = await t.app.inject({
      method: 'POST',
      url: `/v1/models/${name}:recalibrate`,
      headers: ADMIN,
      payload: { instances: night.map(sample) },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ version: 2, activated: true });
    for (let i = 200; i < 400; i++) await predictOne(t.app, name, sample(traffic[i]!));
    const after = await drift(t.app, name);
    console.log(
      `${name}: night traffic on the recalibrated version 2: score ${after.active!.score.toFixed(4)} over ${after.active!.rows} rows`,
    );
    expect(after.active_version).toBe(2);
    expect(after.active!.version).toBe(2);
    expect(after.active!.rows).toBe(200);
    expect(after.active!.recommended).toBe(false);
    expect(after.active!.score).toBeLessThan(after.threshold);
    // Version 1 keeps its own statistics: still recommended.
    expect(after.versions.find((v) => v.version === 1)!.recommended).toBe(true);
  });
});
