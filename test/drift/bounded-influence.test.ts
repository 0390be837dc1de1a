/**
 * Bounded influence of a row on the live drift statistics (docs/drift.md, "Bounded influence"):
 * the taps live drift reads winsorize each BatchNorm input at running_mean ± K·√(running_var + ε)
 * (LIVE_DRIFT_CLIP_SIGMAS), so the reviewer's three rows of 64 × 1e4 among 1,000 clean rows no
 * longer take the windowed score, `recommended`, the gauge or the warn line with them — on both
 * bundled models and both engines; the exact statistics of the same rows (what a recalibration
 * reads) still show the rows. That night traffic is still recommended is asserted, unchanged, by
 * drift-night-shift.test.ts; below, how many clean and night values the clip reaches.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildSequential, layerSchema } from '../../src/checkpoint/index.js';
import {
  LIVE_DRIFT_CLIP_SIGMAS,
  layerDrift,
  modelDriftScore,
  recalibrationRecommended,
} from '../../src/drift/index.js';
import {
  batchNormInputsOf,
  batchNormMoments,
  batchNormTaps,
  clippedBatchNormTaps,
  compileNetwork,
  createExecutor,
  detectWasmSupport,
  type EngineName,
} from '../../src/inference/index.js';
import { BatchNorm, namedModules, Rng, Tensor } from '../../src/nn/index.js';
import { DEFAULT_DRIFT_THRESHOLD, type DriftReport } from '../../src/service/index.js';
import { VersionDrift } from '../../src/service/version-drift.js';
import { type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { digitsImage, digitsRows, digitsTestRows, nightShift } from '../helpers/digits.js';

const SEED = 61;
/** Float64 sums of a few thousand values against a closed form. */
const CLOSED_FORM_RTOL = 1e-9;

let t: LoggedApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

const models: { name: 'digits' | 'digits-cnn'; sample: (r: number[]) => unknown }[] = [
  { name: 'digits', sample: (r) => r },
  { name: 'digits-cnn', sample: (r) => digitsImage(r) },
];
const cases = models.flatMap((m) =>
  (['wasm', 'js'] as EngineName[]).map((engine) => ({ ...m, engine })),
);

async function predict(t: LoggedApp, name: string, row: unknown): Promise<void> {
  const res = await t.app.inject({
    method: 'POST',
    url: `/v1/models/${name}:predict`,
    payload: { instances: [row] },
  });
  expect(res.statusCode).toBe(200);
}

async function driftOf(t: LoggedApp, name: string): Promise<DriftReport> {
  const res = await t.app.inject({ method: 'GET', url: `/v1/models/${name}/drift` });
  expect(res.statusCode).toBe(200);
  return res.json() as DriftReport;
}

/** The model score of `rows` through a version's executor with the given taps (exact or clipped). */
function scoreOf(t: LoggedApp, name: string, rows: number[][], clipped: boolean): number {
  const served = t.registry.resolve(name);
  const drift = new VersionDrift(served, { windowMs: 60_000, windows: 1 });
  // Exact: the same taps, summed about the same shifts (running_mean), without the clip.
  const live = clippedBatchNormTaps(drift.inputs, drift.running, LIVE_DRIFT_CLIP_SIGMAS);
  const taps = clipped ? live : live.map(({ clip, ...tap }) => tap);
  const executor = served.compiled.executor;
  const probe = executor.createProbe(taps);
  executor.accumulate(Float32Array.from(rows.flat()), rows.length, probe);
  return modelDriftScore(
    drift.inputs.map((b, i) => layerDrift(drift.running[i]!, batchNormMoments(b, probe.sums[i]!))),
  );
}

describe('what m values at a bound can do', () => {
  it('among n clean ones, to N = n + m: the mean moves by m·(K − z̄)/N running σ, M2 grows by n·m·(K − z̄)²/N running variances', () => {
    // A lone BatchNorm1d (running mean 1, running variance 4): its input is the row itself. Per
    // channel z̄ is the clean values' standardised mean; the m rows of 1e4 sit at the upper bound
    // 1 + K·√(4 + ε). Chan's merge of the clean moments with m equal values gives both.
    const bn = layerSchema.parse({ type: 'batchnorm1d', num_features: 3 });
    const network = buildSequential([bn], { init: new Rng(1) }).eval();
    const layer = network.modules[0] as unknown as BatchNorm;
    layer.runningMean.data.fill(1);
    layer.runningVar.data.fill(4);
    const plan = compileNetwork(network, undefined, [3]);
    const inputs = batchNormInputsOf(plan);
    const running = [
      { mean: layer.runningMean.data, variance: layer.runningVar.data, eps: layer.eps },
    ];
    const rng = new Rng(SEED);
    const n = 1000;
    const m = 3;
    const clean = Array.from({ length: n * 3 }, () => 1 + 2 * rng.normal() + 0.5);
    const rows = Float32Array.from([...clean, ...Array.from({ length: m * 3 }, () => 1e4)]);
    const K = LIVE_DRIFT_CLIP_SIGMAS;
    const sigma = Math.sqrt(4 + layer.eps);
    const relaxedSimd = detectWasmSupport().relaxedSimd;
    for (const engine of ['js', 'wasm'] as const) {
      const executor = createExecutor(plan, { engine, maxBatchSize: 2048, relaxedSimd });
      const exact = executor.createProbe(batchNormTaps(inputs));
      const clipped = executor.createProbe(clippedBatchNormTaps(inputs, running, K));
      executor.accumulate(rows.subarray(0, n * 3), n, exact);
      executor.accumulate(rows, n + m, clipped);
      const before = batchNormMoments(inputs[0]!, exact.sums[0]!);
      const after = batchNormMoments(inputs[0]!, clipped.sums[0]!);
      const N = n + m;
      for (let c = 0; c < 3; c++) {
        const zBar = (before.mean[c]! - 1) / sigma;
        const bound = Math.fround(1 + K * sigma);
        const kAt = (bound - 1) / sigma; // K, to float32's rounding of the bound
        expect(Math.abs(kAt / K - 1)).toBeLessThan(1e-7);
        const meanMoved = (after.mean[c]! - before.mean[c]!) / sigma;
        expect(Math.abs(meanMoved / ((m * (kAt - zBar)) / N) - 1), engine).toBeLessThan(
          CLOSED_FORM_RTOL,
        );
        const m2Grew = (after.m2[c]! - before.m2[c]!) / sigma ** 2;
        expect(Math.abs(m2Grew / ((n * m * (kAt - zBar) ** 2) / N) - 1), engine).toBeLessThan(
          CLOSED_FORM_RTOL,
        );
      }
      // The drift score's two terms: for m = 3 among 1,003, 0.048 σ and ≈ 0.77 running variances.
      const drift = layerDrift({ path: '0', ...running[0]! }, after);
      const cleanDrift = layerDrift({ path: '0', ...running[0]! }, before);
      expect(drift.mean_shift - cleanDrift.mean_shift).toBeLessThan((m * (K + 0.3)) / N);
    }
  });
});

describe.each(cases)(
  'live drift on $name ($engine) and three absurd rows',
  ({ name, sample, engine }) => {
    it('3 rows of 64 × 1e4 among 1,000 clean rows: the score stays under the threshold, nothing is recommended', async () => {
      t = await makeLoggedApp({
        models: [name],
        env: { ENGINE: engine, AUTO_RECALIBRATE: 'recommend' },
        level: 'info',
      });
      expect(t.registry.resolve(name).compiled.executor.engine).toBe(engine);
      const { x } = digitsTestRows();
      const rng = new Rng(SEED);
      const sent: number[][] = [];
      const send = async (row: number[]) => {
        sent.push(row);
        await predict(t!, name, sample(row));
      };
      for (let i = 0; i < 1000; i++) await send(x[rng.int(x.length)]!);
      const clean = await driftOf(t, name);
      const attack = Array.from({ length: 64 }, () => 1e4);
      const afterEach: number[] = [];
      for (let i = 0; i < 3; i++) {
        await send(attack);
        const report = await driftOf(t, name);
        afterEach.push(report.active!.score);
        expect(report.active!.recommended).toBe(false);
      }
      for (let i = 0; i < 100; i++) await send(x[rng.int(x.length)]!);
      await t.app.deps.drift.drain();
      const report = await driftOf(t, name);
      // The same rows through the exact taps (recalibration's): the rows are still there.
      const exact = scoreOf(t, name, sent, false);
      const clipped = scoreOf(t, name, sent, true);
      console.log(
        `${name} (${engine}): clean ${clean.active!.score.toFixed(4)} after 1,000 rows; after each absurd row ${afterEach.map((s) => s.toFixed(4)).join(', ')}; after 100 more ${report.active!.score.toFixed(4)} (${report.active!.rows} rows; exact taps ${exact.toFixed(2)}, clipped ${clipped.toFixed(4)})`,
      );
      expect(report.threshold).toBe(DEFAULT_DRIFT_THRESHOLD);
      expect(report.active!.rows).toBe(1103);
      expect(Math.max(...afterEach, report.active!.score)).toBeLessThan(DEFAULT_DRIFT_THRESHOLD);
      expect(report.active!.recommended).toBe(false);
      // The service's windowed score is the clipped score of the rows it served.
      expect(Math.abs(report.active!.score - clipped)).toBeLessThan(1e-6);
      expect(
        recalibrationRecommended({ threshold: DEFAULT_DRIFT_THRESHOLD, minRows: 100 }, exact, 1103),
      ).toBe(true);
      expect(exact).toBeGreaterThan(5);
      const logged = t.logs
        .map((l) => JSON.parse(l) as { msg: string })
        .filter((l) => l.msg === 'drift: recalibration recommended');
      expect(logged).toHaveLength(0);
      const metrics = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(
        new RegExp(
          `^normserve_drift_recalibration_recommended\\{model="${name}",version="1"\\} 0$`,
          'm',
        ),
      );
    });
  },
);

/**
 * Per BatchNorm, the values of its inputs (the unfused network's, a pre-hook on each) farther
 * than `sigmas` running σ from the running mean, and the largest such distance.
 */
function beyond(t: LoggedApp, name: string, rows: number[][], sigmas: number) {
  const served = t.registry.resolve(name);
  const network = served.checkpoint.network;
  const transform = served.checkpoint.config.input_transform;
  const shape = served.compiled.plan.inputShape;
  const out: { path: string; values: number; beyond: number; largest: number }[] = [];
  for (const [path, m] of namedModules(network)) {
    if (!(m instanceof BatchNorm)) continue;
    const s = { path, values: 0, beyond: 0, largest: 0 };
    out.push(s);
    m.preHook = (input) => {
      const [n, c, spatial] = m.layout(input.shape);
      for (let i = 0; i < n * c * spatial; i++) {
        const k = Math.floor(i / spatial) % c;
        const z =
          Math.abs(input.data[i]! - m.runningMean.data[k]!) /
          Math.sqrt(m.runningVar.data[k]! + m.eps);
        s.values++;
        s.largest = Math.max(s.largest, z);
        if (z > sigmas) s.beyond++;
      }
    };
  }
  const width = rows[0]!.length;
  const flat = rows.flat();
  const x = transform
    ? flat.map((v, i) => (v - transform.shift[i % width]!) * transform.scale[i % width]!)
    : flat;
  try {
    network.forward(new Tensor(Float32Array.from(x), [rows.length, ...shape]));
  } finally {
    for (const [, m] of namedModules(network)) if (m instanceof BatchNorm) m.preHook = undefined;
  }
  return out;
}

describe.each(models)('the clip on $name and the digits rows', ({ name }) => {
  it('no clean value is clipped; night values keep their verdict', async () => {
    t = await makeLoggedApp({ models: [name], level: 'warn' });
    const { x } = digitsRows(0, 1797);
    for (const [what, rows] of [
      ['clean', x],
      ['night', nightShift(x)],
    ] as const) {
      const layers = beyond(t, name, rows, LIVE_DRIFT_CLIP_SIGMAS);
      const exact = scoreOf(t, name, rows, false);
      const clipped = scoreOf(t, name, rows, true);
      console.log(
        `${name}, ${what} (1,797 rows): beyond ${LIVE_DRIFT_CLIP_SIGMAS} σ ${layers.map((l) => `${l.path} ${l.beyond}/${l.values} (largest ${l.largest.toFixed(2)} σ)`).join(', ')}; score exact ${exact.toFixed(4)}, clipped ${clipped.toFixed(4)}`,
      );
      if (what === 'clean') {
        // Nothing clipped, and with half the margin: the largest clean value is 8.43 σ away.
        expect(layers.every((l) => l.largest < LIVE_DRIFT_CLIP_SIGMAS / 1.5)).toBe(true);
        expect(clipped).toBe(exact);
      } else {
        // digits' first BatchNorm sees night values up to 22.9 σ away, 1.6 % of them beyond
        // 16 σ: the clip takes a little of their spread, not the verdict.
        for (const l of layers) expect(l.beyond / l.values).toBeLessThan(0.02);
        expect(clipped).toBeGreaterThan(DEFAULT_DRIFT_THRESHOLD);
        expect(Math.abs(clipped / exact - 1)).toBeLessThan(0.01);
      }
    }
  });
});
