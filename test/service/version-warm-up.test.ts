/**
 * A version is warmed up while it loads (inference/warm-up.ts, through ModelRegistry's load):
 * its executor runs a 1-row call and a block carrying the live-drift taps before any snapshot names
 * the version, so readiness stays false and the version unserved until the warm-up ends; and the
 * warm-up leaves no trace — the outputs, metrics counts, drift statistics and request logs of the
 * traffic that follows are those of a version that was not warmed up. Order and outcome only.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildSequential } from '../../src/checkpoint/index.js';
import {
  batchNormTaps,
  CompiledModel,
  compileNetwork,
  createExecutor,
  type HelperInit,
  PlanExecutor,
  WasmExecutor,
  warmingUp,
} from '../../src/inference/index.js';
import { Rng, type Sliced } from '../../src/nn/index.js';
import { type DriftReport, ModelRegistry, nodeEngineOptions } from '../../src/service/index.js';
import { makeRepository, makeTestApp, type TestApp } from '../helpers/app.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { TEST_ENGINE } from '../helpers/engine.js';

const warmUp = CompiledModel.prototype.warmingUp;

/**
 * Holds every warm-up at its start until `open()`: `entered` counts those that began. Without the
 * warm-up in the load path nothing is ever entered.
 */
function gateWarmUps() {
  const gate = { entered: 0, opened: false, open: () => {} };
  gate.open = () => {
    gate.opened = true;
  };
  vi.spyOn(CompiledModel.prototype, 'warmingUp').mockImplementation(function* (
    this: CompiledModel,
    taps,
  ): Sliced<void> {
    gate.entered++;
    while (!gate.opened) yield;
    yield* warmUp.call(this, taps);
  });
  return gate;
}

/** Polls (every 5 ms, up to 60 s) until `done()`, or until `settled` says there is no more to wait for. */
async function until(done: () => boolean, settled: () => boolean = () => false): Promise<void> {
  for (let i = 0; i < 12_000 && !done() && !settled(); i++)
    await new Promise((r) => setTimeout(r, 5));
}

const rows = digitsTestRows().x;

let t: TestApp | undefined;
let u: TestApp | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await t?.close();
  await u?.close();
  t = undefined;
  u = undefined;
});

describe('warm-up in the load path', () => {
  it('taps the executor refuses leave the version AVAILABLE: it serves, without live drift statistics', async () => {
    // Live drift is an observation: a version whose taps cannot be made serves without them (the
    // drift service's rule), and its warm-up does not fail it over them either.
    for (const executor of [WasmExecutor, PlanExecutor])
      vi.spyOn(executor.prototype, 'createProbe').mockImplementation(() => {
        throw new RangeError('tap 0 (step 0, output): refused for the test');
      });
    t = await makeTestApp();
    expect(t.registry.get('digits').versions.get(1)).toMatchObject({ state: 'AVAILABLE' });
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/models/digits:predict',
      payload: { instances: rows.slice(0, 3) },
    });
    expect(res.statusCode).toBe(200);
    expect(t.app.deps.drift.versionDrift(t.registry.resolve('digits'))).toBeNull();
  });

  it('a starting registry is not ready, and serves no version, until the warm-up ends', async () => {
    const gate = gateWarmUps();
    const registry = new ModelRegistry(makeRepository(['digits']), {
      maxBatchSize: 64,
      engine: TEST_ENGINE,
    });
    try {
      let loaded = false;
      const refreshed = registry.refresh().then(() => {
        loaded = true;
      });
      await until(
        () => gate.entered > 0,
        () => loaded,
      );
      expect(gate.entered).toBe(1);
      expect(registry.isReady()).toBe(false);
      expect(registry.has('digits')).toBe(false);
      gate.open();
      await refreshed;
      expect(registry.isReady()).toBe(true);
      expect(registry.resolve('digits').version).toBe(1);
    } finally {
      registry.close();
    }
  });

  it('a new version is not ready, nor served, while it warms up; the active one serves meanwhile', async () => {
    t = await makeTestApp();
    const gate = gateWarmUps();
    copyBundledModel('digits', t.repository, { version: 2 });
    let loaded = false;
    const refreshed = t.registry.refresh().then(() => {
      loaded = true;
    });
    await until(
      () => gate.entered > 0,
      () => loaded,
    );
    expect(gate.entered).toBe(1);
    const ready = (url: string) => t!.app.inject({ method: 'GET', url });
    expect((await ready('/v2/models/digits/versions/2/ready')).statusCode).not.toBe(200);
    expect((await ready('/v2/models/digits/ready')).statusCode).toBe(200);
    const during = await t.app.inject({
      method: 'POST',
      url: '/v2/models/digits/infer',
      payload: { inputs: [{ name: 'input', shape: [1, 64], datatype: 'FP32', data: rows[0] }] },
    });
    expect(during.json()).toMatchObject({ model_version: '1' });
    gate.open();
    await refreshed;
    expect((await ready('/v2/models/digits/versions/2/ready')).statusCode).toBe(200);
    expect(t.registry.resolve('digits').version).toBe(2);
  });
});

/** An app whose log lines are kept (the request logs among them). */
async function loggedApp(): Promise<{ app: TestApp; lines: string[] }> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const app = await makeTestApp({
    models: ['digits', 'digits-cnn'],
    logger: pino({ level: 'info' }, sink),
  });
  return { app, lines };
}

/** The counters and histogram counts of the exposition (times and process gauges left out). */
const counts = (text: string) =>
  text
    .split('\n')
    .filter((l) => /^normserve_\w+(_total|_count)[{ ]/.test(l) || /^normserve_drift_rows/.test(l))
    .sort();

describe('the warm-up leaves no trace', () => {
  it('outputs, metrics counts, drift statistics and request logs are those of a version not warmed up', async () => {
    const warmed = await loggedApp();
    t = warmed.app;
    // The same load without the warm-up: the reference.
    vi.spyOn(CompiledModel.prototype, 'warmingUp').mockImplementation(function* () {});
    const cold = await loggedApp();
    u = cold.app;
    vi.restoreAllMocks();

    // Nothing before the first request: no request logged, nothing counted, no drift statistics.
    expect(warmed.lines.map((l) => JSON.parse(l).msg)).toEqual(
      cold.lines.map((l) => JSON.parse(l).msg),
    );
    const before = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(counts(before)).toEqual(
      counts((await u.app.inject({ method: 'GET', url: '/metrics' })).body),
    );
    expect(before).not.toMatch(/^normserve_drift_rows/m);
    for (const model of ['digits', 'digits-cnn']) {
      // Asked of both apps, so that their request counts stay alike.
      for (const x of [t, u]) {
        const report = (
          await x.app.inject({ method: 'GET', url: `/v1/models/${model}/drift` })
        ).json();
        expect(report).toMatchObject({ active: null, versions: [] });
      }
    }

    const traffic = [
      ['digits', 1],
      ['digits', 256],
      ['digits-cnn', 1],
      ['digits-cnn', 256],
      ['digits', 3],
    ] as const;
    const linesBefore = [warmed.lines.length, cold.lines.length];
    for (const [model, n] of traffic) {
      const payload = { instances: rows.slice(0, n) };
      const [a, b] = await Promise.all(
        [t, u].map((x) =>
          x.app.inject({ method: 'POST', url: `/v1/models/${model}:predict`, payload }),
        ),
      );
      expect(a!.statusCode).toBe(200);
      expect(a!.body).toBe(b!.body);
    }
    const requestLogs = (lines: string[], from: number) =>
      lines.slice(from).map((l) => {
        const { msg, req, res } = JSON.parse(l);
        return { msg, url: req?.url, status: res?.statusCode };
      });
    expect(requestLogs(warmed.lines, linesBefore[0]!)).toEqual(
      requestLogs(cold.lines, linesBefore[1]!),
    );
    const after = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(counts(after)).toEqual(
      counts((await u.app.inject({ method: 'GET', url: '/metrics' })).body),
    );
    for (const [model, rowsSent] of [
      ['digits', 260],
      ['digits-cnn', 257],
    ] as const) {
      const [a, b] = await Promise.all(
        [t, u].map(
          async (x) =>
            (
              await x.app.inject({ method: 'GET', url: `/v1/models/${model}/drift` })
            ).json() as DriftReport,
        ),
      );
      expect(a!.active!.rows).toBe(rowsSent);
      // The same sums bit for bit: the warm-up's probe gave nothing to the live one.
      expect(a!.active!.layers).toEqual(b!.active!.layers);
    }
  });
});

describe('warmingUp on an executor', () => {
  const bn = {
    type: 'batchnorm1d',
    num_features: 96,
    eps: 1e-5,
    momentum: 0.1,
    affine: true,
    track_running_stats: true,
  } as const;
  // 45,696 flops a row: WARM_UP_MAX_FLOPS allows 91 rows, which the wasm engine would split
  // (4·10^6 flops or more) — warmUpRows keeps the block to 87.
  const plan = compileNetwork(
    buildSequential(
      [
        { type: 'linear', in_features: 40, out_features: 96, bias: true },
        bn,
        { type: 'relu' },
        { type: 'linear', in_features: 96, out_features: 96, bias: true },
        { type: 'relu' },
        { type: 'linear', in_features: 96, out_features: 96, bias: true },
        { type: 'relu' },
        { type: 'linear', in_features: 96, out_features: 6, bias: true },
      ],
      { init: new Rng(5) },
    ).eval(),
    undefined,
    [40],
  );
  const input = Float32Array.from({ length: 300 * 40 }, (_, i) => Math.sin(i * 0.37) * 3);
  const taps = batchNormTaps(plan.batchNormInputs);

  it('leaves outputs and statistics as a fresh executor gives them, and starts no helper thread', () => {
    let spawned = 0;
    const spawnHelper = nodeEngineOptions({}).spawnHelper!;
    const options = {
      maxBatchSize: 512,
      engine: TEST_ENGINE,
      threads: 2,
      spawnHelper: (init: HelperInit) => {
        spawned++;
        return spawnHelper(init);
      },
    };
    const fresh = createExecutor(plan, options);
    const warmed = createExecutor(plan, options);
    try {
      const row = new Float32Array(40).fill(0.5);
      let turns = 0;
      for (const _ of warmingUp(warmed, row, taps)) turns++;
      expect(turns).toBe(1); // the two calls in two turns
      expect(spawned).toBe(0);
      if (warmed instanceof WasmExecutor) expect(warmed.parallelCalls).toBe(0);
      for (const n of [1, 7, 300]) {
        const a = fresh.createProbe(taps);
        const b = warmed.createProbe(taps);
        expect(Buffer.from(warmed.run(input, n, b).buffer)).toEqual(
          Buffer.from(fresh.run(input, n, a).buffer),
        );
        expect(b.sums.map((s) => [s.count, [...s.sum], [...s.sumSquares]])).toEqual(
          a.sums.map((s) => [s.count, [...s.sum], [...s.sumSquares]]),
        );
      }
    } finally {
      fresh.close();
      warmed.close();
    }
  });
});
