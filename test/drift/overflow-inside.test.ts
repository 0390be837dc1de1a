/**
 * A row whose outputs are finite although a value inside the network overflowed float32: on
 * Linear(1→2) → BatchNorm1d → ReLU → Linear(2→1), the row [3e38] makes the second hidden unit
 * −1.5·3e38 = −∞, which the ReLU clamps to +0; PyTorch 1.13 answers 299.9985046386719 (checked
 * with torch.nn on the same weights), and so does normserve, 200. But that BatchNorm's input is
 * −∞ for the row: its statistics are not finite. It must not poison what drift keeps of the
 * traffic: the live statistics (dropped, and afterwards each call folded alone for a window, as
 * after a refusal), the pictures of the recent rows, and the traffic sample an automatic
 * recalibration draws from (which would fail on it for as long as it stays in the sample).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildSequential, parseModelConfig } from '../../src/checkpoint/index.js';
import {
  rowsWithFiniteStatistics,
  rowsWithFiniteStatisticsInBlocks,
} from '../../src/drift/index.js';
import { batchNormTaps } from '../../src/inference/index.js';
import { Rng } from '../../src/nn/index.js';
import { ModelRepository } from '../../src/repository/index.js';
import {
  type AutoRecalibrationStatus,
  ModelRegistry,
  SAMPLE_ROWS_PER_CALL,
} from '../../src/service/index.js';
import { type LoggedApp, makeLoggedApp } from '../helpers/admin.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

let t: LoggedApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  removeTempDirs();
});

/** PyTorch's output for the row [3e38] (torch 1.13, float32, eval mode). */
const TORCH_OUTPUT = 299.9985046386719;
const POISON = [3e38];

/**
 * The BatchNorm's weight and running variance: [1, 1] and [1, 1] by default, where the served plan
 * folds it into the first Linear and reads its input there (x = y/s, s ≈ 1).
 */
interface TinyBatchNorm {
  weight?: number[];
  runningVar?: number[];
}

async function tinyRepository(bn: TinyBatchNorm = {}): Promise<string> {
  const root = makeTempDir('overflow-inside');
  const config = parseModelConfig({
    format: 'normserve.model/v1',
    name: 'tiny',
    task: 'regression',
    input_shape: [1],
    layers: [
      { type: 'linear', in_features: 1, out_features: 2, bias: true },
      {
        type: 'batchnorm1d',
        num_features: 2,
        eps: 1e-5,
        momentum: 0.1,
        affine: true,
        track_running_stats: true,
      },
      { type: 'relu' },
      { type: 'linear', in_features: 2, out_features: 1, bias: true },
    ],
  });
  const state = buildSequential(config.layers, { init: new Rng(1) }).stateDict();
  const set = (name: string, values: number[]) =>
    (state.get(name) as { data: Float32Array }).data.set(values);
  set('0.weight', [1, -1.5]);
  set('0.bias', [0, 0]);
  set('1.weight', bn.weight ?? [1, 1]);
  set('1.bias', [0, 0]);
  set('1.running_mean', [0, 0]);
  set('1.running_var', bn.runningVar ?? [1, 1]);
  set('3.weight', [1e-36, 1]);
  set('3.bias', [0]);
  await new ModelRepository(root).publishVersion({ config, state });
  return root;
}

async function predict(rows: number[][]): Promise<number[]> {
  const res = await t!.app.inject({
    method: 'POST',
    url: '/v1/models/tiny:predict',
    payload: { instances: rows },
  });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { predictions: number[][] }).predictions.map((p) => p[0]!);
}

/** Traffic far from the running statistics (mean 0): x uniform in [2, 4]. */
const shifted = (rng: Rng, n: number) => Array.from({ length: n }, () => [2 + 2 * rng.next()]);

describe('a row that overflows inside the network, its outputs finite', () => {
  it("is answered as PyTorch answers it, and stays out of the drift statistics and the pictures' rows", async () => {
    t = await makeLoggedApp({ repository: await tinyRepository(), level: 'warn' });
    const drift = t.app.deps.drift;
    const rng = new Rng(3);
    const [, poisoned] = await predict([[1], POISON, [2]]);
    expect(poisoned).toBe(TORCH_OUTPUT);
    for (let i = 0; i < 5; i++) await predict(shifted(rng, 4));
    // The taps summed −∞: those sums are dropped (every row since the last merge).
    expect(drift.report('tiny').active!.rows).toBe(0);
    // From then on every call is merged as it ends: a second such call drops its own rows only.
    await predict(shifted(rng, 7));
    await predict([[1], POISON]);
    await predict(shifted(rng, 3));
    const report = drift.report('tiny').active!;
    expect(report.rows).toBe(10);
    expect(Number.isFinite(report.score)).toBe(true);
    // The pictures are drawn from the answered rows whose BatchNorm inputs are finite.
    const pictures = await drift.pictures('tiny');
    expect(pictures.rows).toBe(2 + 20 + 7 + 1 + 3);
    expect(JSON.stringify(pictures)).not.toMatch(/null|Infinity|NaN|e\+3\d/);
  });

  it('does not keep AUTO_RECALIBRATE from recalibrating from the traffic sample', async () => {
    t = await makeLoggedApp({
      repository: await tinyRepository(),
      level: 'info',
      env: {
        AUTO_RECALIBRATE: 'promote',
        AUTO_RECALIBRATE_MIN_ROWS: '32',
        DRIFT_MIN_ROWS: '32',
      },
    });
    const rng = new Rng(4);
    await predict([[3], POISON]);
    for (let i = 0; i < 200 && t.registry.get('tiny').active === 1; i++) {
      await predict(shifted(rng, 1));
      await t.app.deps.drift.drain();
    }
    const status = (
      (await t.app.inject({ method: 'GET', url: '/v1/models/tiny' })).json() as {
        auto_recalibration?: AutoRecalibrationStatus;
      }
    ).auto_recalibration!;
    expect(status.last_action, JSON.stringify(status)).toMatchObject({
      action: 'promote',
      outcome: 'succeeded',
      version: 2,
    });
    expect(t.registry.get('tiny').active).toBe(2);
    // At the first attempt, from the sample without that row (it made the BatchNorm's statistics
    // −∞ and the recalibration fail, losing the sample).
    const lines = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.msg === 'drift: recalibration from traffic failed')).toEqual([]);
    const started = lines.filter((l) => l.msg === 'drift: recalibrating from traffic');
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ overflowingRows: 1 });
    expect(started[0]!.rows).toBe((started[0]!.trafficRows as number) - 1);
    // The recalibrated BatchNorm sees the shifted traffic: its running mean is near 3, not ±∞.
    const bn = t.registry.resolve('tiny').checkpoint.network.modules[1] as unknown as {
      runningMean: { data: Float32Array };
    };
    expect(bn.runningMean.data[0]).toBeGreaterThan(2.5);
    expect(bn.runningMean.data[0]).toBeLessThan(3.5);
    expect(Number.isFinite(bn.runningMean.data[1]!)).toBe(true);
  });
});

/**
 * BatchNorms whose input the served plan does not read as it is: folded into the first Linear with
 * γ = 0 on the channel that overflows (s = 0: the input cannot be recovered from the step's
 * output, so the plan has no tap for it), or with a running variance of 1e4 (s = 0.01: the folded
 * step's −1.5·0.01·3e38 is finite where the BatchNorm's input −1.5·3e38 is −∞). The pictures and
 * a recalibration read the input itself (prefix plans, BatchNorms unfolded), so the row must still
 * be left out of both (usable-rows.ts checks the rows on such a plan).
 */
describe.each([
  { what: 'with no tap (γ = 0 on that channel)', bn: { weight: [1, 0] }, tapped: false },
  {
    what: 'read through a fold that does not overflow',
    bn: { runningVar: [1, 1e4] },
    tapped: true,
  },
])('a BatchNorm $what', ({ bn, tapped }) => {
  it('leaves the row that overflows at its input out of the pictures', async () => {
    t = await makeLoggedApp({ repository: await tinyRepository(bn), level: 'warn' });
    const plan = t.registry.resolve('tiny').compiled.plan;
    expect(plan.batchNormInputs.map((b) => b.tap !== undefined)).toEqual([tapped]);
    const rng = new Rng(6);
    await predict([[1], POISON, [2]]);
    await predict(shifted(rng, 5));
    const pictures = await t.app.deps.drift.pictures('tiny');
    expect(pictures.rows).toBe(2 + 5);
    expect(JSON.stringify(pictures)).not.toMatch(/null|Infinity|NaN|e\+3\d/);
  });
});

describe('a row that overflows at an input read through a fold that does not overflow', () => {
  // (With γ = 0 instead, live drift cannot see the model's one BatchNorm, so nothing triggers an
  // automatic recalibration.) Left out of the sample as overflowing; before, the sample's
  // outlier screen alone kept it from the recalibration.
  it('is counted as overflowing and left out of the traffic sample a recalibration uses', async () => {
    t = await makeLoggedApp({
      repository: await tinyRepository({ runningVar: [1, 1e4] }),
      level: 'info',
      env: {
        AUTO_RECALIBRATE: 'promote',
        AUTO_RECALIBRATE_MIN_ROWS: '32',
        DRIFT_MIN_ROWS: '32',
      },
    });
    const rng = new Rng(4);
    await predict([[3], POISON]);
    for (let i = 0; i < 200 && t.registry.get('tiny').active === 1; i++) {
      await predict(shifted(rng, 1));
      await t.app.deps.drift.drain();
    }
    const lines = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.msg === 'drift: recalibration from traffic failed')).toEqual([]);
    expect(t.registry.get('tiny').active).toBe(2);
    const started = lines.filter((l) => l.msg === 'drift: recalibrating from traffic');
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ overflowingRows: 1 });
    expect(started[0]!.rows).toBe((started[0]!.trafficRows as number) - 1);
  });
});

describe('a traffic sample mostly of such rows', () => {
  it('is not recalibrated from with fewer usable rows than AUTO_RECALIBRATE_MIN_ROWS', async () => {
    t = await makeLoggedApp({
      repository: await tinyRepository(),
      level: 'info',
      env: {
        AUTO_RECALIBRATE: 'promote',
        AUTO_RECALIBRATE_MIN_ROWS: '128',
        DRIFT_MIN_ROWS: '8',
      },
    });
    const rng = new Rng(5);
    // 200 such rows in 25 calls (a call offers the sample SAMPLE_ROWS_PER_CALL rows at most), then
    // shifted traffic 3 rows a call: when the drift rule first fires, the sample holds more than
    // 128 rows but fewer than 128 usable ones.
    expect(SAMPLE_ROWS_PER_CALL).toBe(8);
    for (let i = 0; i < 25; i++) await predict(Array.from({ length: 8 }, () => POISON));
    for (let i = 0; i < 200 && t.registry.get('tiny').active === 1; i++) {
      await predict(shifted(rng, 3));
      await t.app.deps.drift.drain();
    }
    expect(t.registry.get('tiny').active).toBe(2);
    const lines = t.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const postponed = lines.filter((l) =>
      String(l.msg).startsWith('drift: too few usable rows in the traffic sample'),
    );
    expect(postponed.length).toBeGreaterThanOrEqual(1);
    expect(postponed[0]).toMatchObject({ overflowingRows: 200 });
    const started = lines.filter((l) => l.msg === 'drift: recalibrating from traffic');
    expect(started).toHaveLength(1);
    expect(started[0]!.rows as number).toBeGreaterThanOrEqual(128);
  });
});

describe('rowsWithFiniteStatistics', () => {
  it('keeps, in order, exactly the rows whose tapped values are finite; a clean sample as it is', async () => {
    const registry = new ModelRegistry(await tinyRepository(), {
      maxBatchSize: 64,
      engine: TEST_ENGINE,
    });
    await registry.refresh();
    const compiled = registry.resolve('tiny').compiled;
    const inputs = compiled.plan.batchNormInputs;
    expect(inputs.map((b) => b.tap !== undefined)).toEqual([true]);
    const probe = compiled.executor.createProbe(batchNormTaps(inputs));
    const rows = 200;
    const clean = Float32Array.from({ length: rows }, (_, i) => (i % 7) - 3);
    const same = rowsWithFiniteStatistics(compiled.executor, probe, clean, rows);
    expect(same.count).toBe(rows);
    expect(same.rows).toBe(clean);
    // Rows at the edges of the blocks of 64, in one block together, and the last.
    const bad = [0, 63, 64, 100, 101, 199];
    const input = clean.slice();
    for (const r of bad) input[r] = r % 2 === 0 ? 3e38 : -3e38;
    const kept = rowsWithFiniteStatistics(compiled.executor, probe, input, rows);
    const want = [...clean].filter((_, r) => !bad.includes(r));
    expect(kept.count).toBe(want.length);
    expect([...kept.rows]).toEqual(want);
    // Block by block, a yield after each: the same rows (a clean sample as it is).
    const inBlocks = (sample: Float32Array) => {
      const checking = rowsWithFiniteStatisticsInBlocks(compiled.executor, probe, sample, rows);
      let yields = 0;
      for (;;) {
        const step = checking.next();
        if (step.done) return { ...step.value, yields };
        yields++;
      }
    };
    expect(inBlocks(clean)).toStrictEqual({ rows: clean, count: rows, yields: 4 });
    expect(inBlocks(clean).rows).toBe(clean);
    expect(inBlocks(input)).toStrictEqual({ ...kept, yields: 4 });
    // Every row bad: none kept.
    expect(rowsWithFiniteStatistics(compiled.executor, probe, input.fill(3e38), rows).count).toBe(
      0,
    );
    expect(inBlocks(input).count).toBe(0);
    registry.close();
  });
});
