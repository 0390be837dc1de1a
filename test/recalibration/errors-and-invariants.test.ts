/**
 * Refusals (codes and messages), what recalibration never touches (γ, β, weights; modes;
 * num_batches_tracked outside `running`), restoration on failure, and the shift report.
 */
import { describe, expect, it } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import {
  type BatchNorm,
  BatchNorm1d,
  Linear,
  ReLU,
  Sequential,
  Tensor,
} from '../../src/nn/index.js';
import {
  createRecalibrator,
  type RecalibrationMode,
  recalibrate,
} from '../../src/recalibration/index.js';
import { loadModel, nightShift, readDigitRows, WIDTH } from './helpers/digits-fixtures.js';
import { INPUT_SHIFT_RTOL, SHIFT_REPORT_RTOL } from './helpers/recalibration-tolerances.js';

const MODEL_DIR = 'test/fixtures/torch-model/digits-torch/1';
const MODES: readonly RecalibrationMode[] = ['exact', 'prior', 'running'];
const night = nightShift(readDigitRows().pixels);

/** Resolves to the NormserveError a promise or function rejects with. */
async function codeOf(action: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await action();
  } catch (e) {
    if (isNormserveError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a NormserveError, nothing was thrown');
}

/** Every float tensor and integer of the network's state dict, copied. */
function snapshot(network: Sequential): Map<string, Float32Array | bigint> {
  const out = new Map<string, Float32Array | bigint>();
  for (const [name, v] of network.stateDict())
    out.set(name, typeof v === 'bigint' ? v : v.data.slice());
  return out;
}

describe('refusals', () => {
  for (const mode of MODES) {
    it(`${mode}: one sample is TOO_FEW_SAMPLES and leaves the network as it was`, async () => {
      const { network, inputTransform } = loadModel(MODEL_DIR);
      const before = snapshot(network);
      const recalibrator = createRecalibrator(network, inputTransform, WIDTH, { mode });
      await recalibrator.push(night.subarray(0, WIDTH));
      expect(await codeOf(() => recalibrator.finish())).toEqual({
        code: 'TOO_FEW_SAMPLES',
        message:
          'need at least 2 samples: one sample gives BatchNorm 1 (BatchNorm1d, input [32]) one value per channel, which has no variance',
      });
      expect(snapshot(network)).toEqual(before);
      expect(
        await codeOf(() =>
          recalibrate(network, inputTransform, WIDTH, new Float32Array(0), { mode }),
        ),
      ).toMatchObject({ code: 'TOO_FEW_SAMPLES' });
      // finish() closes the recalibrator, even when it fails.
      await expect(recalibrator.push(night.subarray(0, WIDTH))).rejects.toThrow(/already called/);
    });
  }

  // `prior` blends in the model's own statistics, which keep the variance positive.
  for (const mode of ['exact', 'running'] as const) {
    it(`${mode}: identical samples (no variance where the model had some) are TOO_FEW_SAMPLES and leave the network as it was`, async () => {
      // review45: three copies of a row published running_var 0 everywhere, and the folded layers
      // scaled every channel by 1/sqrt(eps): accuracy fell to 0.31 on the rows it was given.
      const { network, inputTransform } = loadModel(MODEL_DIR);
      const before = snapshot(network);
      const copies = new Float32Array(4 * WIDTH);
      for (let r = 0; r < 4; r++) copies.set(night.subarray(0, WIDTH), r * WIDTH);
      const recalibrator = createRecalibrator(network, inputTransform, WIDTH, {
        mode,
        ...(mode === 'running' ? { batchSize: 2 } : {}),
      });
      await recalibrator.push(copies);
      const refused = await codeOf(() => recalibrator.finish());
      expect(refused.code).toBe('TOO_FEW_SAMPLES');
      expect(refused.message).toMatch(
        /^the 4 samples give BatchNorm 1 no variance in 32 of its 32 channels .*identical rows count as one\)$/,
      );
      expect(snapshot(network)).toEqual(before);
    });
  }

  // The recalibration attacker of 2026-12-04: a prior of next to no weight on copies of a row
  // passed the exact-zero test, the blend's share of the model's variance making it nonzero, and
  // published a version at chance on both domains (night 0.2972, clean 0.1944).
  it('prior: copies of a row with a prior of next to no weight are TOO_FEW_SAMPLES; a prior of weight keeps them', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const before = snapshot(network);
    const copies = new Float32Array(3 * WIDTH);
    for (let r = 0; r < 3; r++) copies.set(night.subarray(0, WIDTH), r * WIDTH);
    const faintPrior = await codeOf(() =>
      recalibrate(network, inputTransform, WIDTH, copies, { mode: 'prior', priorStrength: 1e-8 }),
    );
    expect(faintPrior.code).toBe('TOO_FEW_SAMPLES');
    expect(faintPrior.message).toMatch(
      /^the 3 samples give BatchNorm 1 no variance in 32 of its 32 channels \(the samples are alike there, where the model's running_var exceeded eps\): the folded layer would scale them by up to [\d.]+ times the model's scale \(a prior_strength of at least [\d.]+ keeps half of the model's variance in them\); upload samples that vary \(identical rows count as one\)$/,
    );
    expect(snapshot(network)).toEqual(before);
    // A prior of 3 rows against 3 copies keeps half the model's variance: published.
    const kept = await recalibrate(network, inputTransform, WIDTH, copies, {
      mode: 'prior',
      priorStrength: 3,
    });
    expect(kept.samples).toBe(3);
  });

  // The same rule in every mode: the folded scale of a channel the samples leave constant grows
  // by at most √2, so a prior must keep about half of the model's variance there. A rule on eps
  // published 3 copies of a row with a prior of 5e-5, the scale grown 223× (the third reader of
  // 2026-12-04); 16 against 20 samples keep 0.444 of a running_var of 1 (1.5×) and are refused
  // too, naming the strength that keeps half: 20·(1 − eps)/(1 + eps) → 20.
  it('prior: a channel the samples leave constant must keep about half of the model variance', async () => {
    const build = () => {
      const bn = new BatchNorm1d({ numFeatures: 3 });
      bn.runningVar.data.set([2, 1, 1]);
      return { bn, network: new Sequential([bn, new Linear({ inFeatures: 3, outFeatures: 2 })]) };
    };
    const rows = new Float32Array(20 * 3);
    for (let r = 0; r < 20; r++) rows.set([r % 5, 0, (r * 7) % 3], r * 3);
    const weak = build();
    const refused = await codeOf(() =>
      recalibrate(weak.network, undefined, 3, rows, { mode: 'prior', priorStrength: 16 }),
    );
    expect(refused.code).toBe('TOO_FEW_SAMPLES');
    expect(refused.message).toMatch(
      /by up to 1\.5 times the model's scale .* a prior_strength of at least 20 keeps half of the model's variance in them$/,
    );
    const kept = build();
    await recalibrate(kept.network, undefined, 3, rows, { mode: 'prior', priorStrength: 20 });
    expect(kept.bn.runningVar.data[1]).toBeCloseTo(0.5, 6);
    // Copies of a digits row with a prior of 5e-5: refused, where a rule on eps published them.
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const copies = new Float32Array(3 * WIDTH);
    for (let r = 0; r < 3; r++) copies.set(night.subarray(0, WIDTH), r * WIDTH);
    const faint = await codeOf(() =>
      recalibrate(network, inputTransform, WIDTH, copies, {
        mode: 'prior',
        priorStrength: 5.41e-5,
      }),
    );
    expect(faint.code).toBe('TOO_FEW_SAMPLES');
  });

  // The second reader of 2026-12-04: a rule on eps ("every channel at most eps") refused a
  // low-contrast domain, 360 distinct digits as 0.001·x + 1.6, which PyTorch recalibrates and
  // whose recalibrated model scored 0.939 on that domain. Samples that vary a little are kept;
  // copies of a row with noise of 1e-4 give such statistics too, and are kept as PyTorch keeps them.
  it('exact: samples that vary only a little (a low-contrast domain, every channel at most eps) are recalibrated, as PyTorch does', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const rows = night.length / WIDTH;
    const faint = night.map((v) => 0.001 * v + 1.6);
    const result = await recalibrate(network, inputTransform, WIDTH, faint, { mode: 'exact' });
    expect(result.samples).toBe(rows);
    const bn = network.modules.find((m) => m instanceof BatchNorm1d) as BatchNorm1d;
    // Every channel of the first BatchNorm ends at most eps: the case the refused rule caught.
    expect(Math.max(...bn.runningVar.data)).toBeLessThanOrEqual(bn.eps);
    expect(Math.min(...bn.runningVar.data)).toBeGreaterThan(0);
  });

  // review57: a BatchNorm on the inputs of digits, whose corner pixels are 0 in every image, was
  // refused even on the model's own training rows: training's momentum had decayed those channels'
  // initial running_var of 1 to 0.9^k, positive but far below eps.
  for (const mode of MODES) {
    it(`${mode}: a channel constant again where the model's running_var was at most eps is kept at 0, as PyTorch stores it; above eps it is refused`, async () => {
      const build = (constantVar: number) => {
        const bn = new BatchNorm1d({ numFeatures: 3 });
        bn.runningMean.data.set([0.5, 0, -1]);
        bn.runningVar.data.set([2, constantVar, 1]);
        return { bn, network: new Sequential([bn, new Linear({ inFeatures: 3, outFeatures: 2 })]) };
      };
      // Column 1 is 0 in every row; the others vary.
      const rows = new Float32Array([1, 0, -2, 3, 0, 0.5, -1, 0, 1, 2, 0, -0.5]);
      const options = {
        mode,
        ...(mode === 'running' ? { batchSize: 2 } : {}),
        ...(mode === 'prior' ? { priorStrength: 0 } : {}),
      };
      const decayed = build(6.6e-7); // 0.9^135: the corner pixel of a trained digits model
      await recalibrate(decayed.network, undefined, 3, rows, options);
      expect(decayed.bn.runningVar.data[1]).toBe(0);
      expect(decayed.bn.runningVar.data[0]).toBeGreaterThan(0);

      const varied = build(2e-5);
      const before = snapshot(varied.network);
      const refused = await codeOf(() => recalibrate(varied.network, undefined, 3, rows, options));
      expect(refused.code).toBe('TOO_FEW_SAMPLES');
      expect(refused.message).toMatch(
        // √(3e-5 / 1e-5) = 1.73; N/(N + 4)·2e-5 + 1e-5 ≥ 1.5e-5 from N ≥ 4/3.
        mode === 'prior'
          ? /^the 4 samples give BatchNorm 0 no variance in 1 of its 3 channels, though they vary in the others: .* by up to 1\.73 times the model's scale for any later input that does vary there \(their running_var would keep the prior_strength's share of the model's\); a prior_strength of at least 1\.34 keeps half of the model's variance in them$/
          : /^the 4 samples give BatchNorm 0 no variance in 1 of its 3 channels, though they vary in the others: .* by up to 1\.73 times the model's scale for any later input that does vary there \(PyTorch would store running_var 0\); mode=prior with a prior_strength of at least 1\.34 keeps half of the model's variance in them$/,
      );
      expect(snapshot(varied.network)).toEqual(before);
      if (mode === 'prior') {
        // As the message says: a prior of 1.34 rows keeps half of that variance.
        await recalibrate(varied.network, undefined, 3, rows, { mode, priorStrength: 1.34 });
        expect(varied.bn.runningVar.data[1]).toBeCloseTo((1.34 / 5.34) * 2e-5, 12);
      }
    });
  }

  it('samples that differ are recalibrated even when only two rows vary', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const rows = new Float32Array(3 * WIDTH);
    for (let r = 0; r < 3; r++) rows.set(night.subarray(0, WIDTH), r * WIDTH);
    rows[2 * WIDTH + 10] = rows[2 * WIDTH + 10]! + 1;
    const result = await recalibrate(network, inputTransform, WIDTH, rows, { mode: 'exact' });
    expect(result.samples).toBe(3);
  });

  it('a non-finite value is INVALID_INPUT naming the row and column; the chunk is rejected whole', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const recalibrator = createRecalibrator(network, inputTransform, WIDTH, { mode: 'exact' });
    await recalibrator.push(night.subarray(0, 3 * WIDTH));
    const bad = night.slice(3 * WIDTH, 8 * WIDTH);
    bad[2 * WIDTH + 5] = Number.NaN;
    expect(await codeOf(() => recalibrator.push(bad))).toEqual({
      code: 'INVALID_INPUT',
      message: 'row 5, column 5: NaN is not a finite number',
    });
    expect(recalibrator.rows).toBe(3);
    bad[2 * WIDTH + 5] = 0;
    bad[4 * WIDTH + 63] = Number.NEGATIVE_INFINITY;
    expect(await codeOf(() => recalibrator.push(bad))).toMatchObject({
      code: 'INVALID_INPUT',
      message: 'row 7, column 63: -Infinity is not a finite number',
    });
    // The recalibrator stays usable after a rejected chunk.
    await recalibrator.push(night.subarray(3 * WIDTH));
    expect((await recalibrator.finish()).samples).toBe(360);
  });

  it('non-finite values are found whether the first pass checks them (one slice) or push does (several)', async () => {
    // A chunk of one slice is checked by the first BatchNorm's own pass over it (its input sums);
    // a chunk of several slices is checked whole before any slice is taken. Same errors, and a
    // rejected chunk leaves nothing behind either way: the statistics equal a clean run's.
    const { network: clean, inputTransform } = loadModel(MODEL_DIR);
    await recalibrate(clean, inputTransform, WIDTH, night, { mode: 'exact' });
    for (const chunkRows of [4096, 2]) {
      const { network } = loadModel(MODEL_DIR);
      const recalibrator = createRecalibrator(network, inputTransform, WIDTH, {
        mode: 'exact',
        chunkRows,
      });
      await recalibrator.push(night.subarray(0, 3 * WIDTH));
      for (const [at, value] of [
        [0, Number.NaN],
        [3 * WIDTH + 63, Number.POSITIVE_INFINITY],
        [4 * WIDTH, Number.NEGATIVE_INFINITY],
      ] as const) {
        const bad = night.slice(3 * WIDTH, 8 * WIDTH);
        bad[at] = value;
        expect(await codeOf(() => recalibrator.push(bad))).toEqual({
          code: 'INVALID_INPUT',
          message: `row ${3 + Math.floor(at / WIDTH)}, column ${at % WIDTH}: ${value} is not a finite number`,
        });
        expect(recalibrator.rows).toBe(3);
      }
      await recalibrator.push(night.subarray(3 * WIDTH));
      await recalibrator.finish();
      const got = snapshot(network);
      for (const [name, v] of snapshot(clean))
        expect(got.get(name), `${name} (chunkRows ${chunkRows})`).toEqual(v);
    }
  });

  it('a finite value the input transform overflows is not mistaken for a non-finite one', async () => {
    // 3e38 standardised overflows float32 inside the plan: the first pass's input sums are
    // infinite, the exact check finds every value finite, and the statistics' own check refuses.
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const scale = Math.max(...Array.from(inputTransform!.scale, Math.abs));
    expect(3e38 * scale).toBeGreaterThan(3.4028234663852886e38);
    const rows = night.slice(0, 10 * WIDTH);
    rows[WIDTH + 7] = 3e38;
    const recalibrator = createRecalibrator(network, inputTransform, WIDTH, { mode: 'exact' });
    await recalibrator.push(rows);
    expect(recalibrator.rows).toBe(10);
    expect(await codeOf(() => recalibrator.finish())).toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringMatching(/statistics of BatchNorm layer .* are not finite/),
    });
  });

  it('a chunk that is not whole rows is INVALID_INPUT', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    for (const mode of MODES) {
      const recalibrator = createRecalibrator(network, inputTransform, WIDTH, { mode });
      const error = await codeOf(() => recalibrator.push(night.subarray(0, WIDTH + 1)));
      expect(error.code).toBe('INVALID_INPUT');
      expect(error.message).toContain('not a whole number of rows of 64 features');
    }
    expect(
      await codeOf(() =>
        recalibrate(network, inputTransform, WIDTH, night.subarray(0, 10 * WIDTH - 3), {
          mode: 'exact',
        }),
      ),
    ).toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('a network without BatchNorm is NOT_RECALIBRATABLE', async () => {
    const network = new Sequential([new Linear({ inFeatures: 4, outFeatures: 3 }), new ReLU()]);
    for (const mode of MODES) {
      expect(await codeOf(() => createRecalibrator(network, undefined, 4, { mode }))).toMatchObject(
        { code: 'NOT_RECALIBRATABLE' },
      );
    }
  });

  it('more than maxSamples rows is TOO_MANY_SAMPLES', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    const recalibrator = createRecalibrator(network, inputTransform, WIDTH, {
      mode: 'running',
      maxSamples: 10,
    });
    await recalibrator.push(night.subarray(0, 6 * WIDTH));
    expect(await codeOf(() => recalibrator.push(night.subarray(0, 5 * WIDTH)))).toEqual({
      code: 'TOO_MANY_SAMPLES',
      message: 'at most 10 samples are accepted (MAX_RECALIBRATION_SAMPLES); the upload has more',
    });
    expect(
      await codeOf(() =>
        recalibrate(network, inputTransform, WIDTH, night, { mode: 'exact', maxSamples: 359 }),
      ),
    ).toMatchObject({ code: 'TOO_MANY_SAMPLES' });
  });

  it('bad options are INVALID_INPUT; a width that does not fit the network is SHAPE_MISMATCH', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    for (const options of [
      { mode: 'running', batchSize: 1 },
      { mode: 'prior', priorStrength: -1 },
      { mode: 'exact', chunkRows: 0 },
      { mode: 'exact', maxSamples: 2.5 },
      { mode: 'fast' },
    ] as const) {
      expect(
        await codeOf(() =>
          createRecalibrator(network, inputTransform, WIDTH, options as { mode: 'exact' }),
        ),
      ).toMatchObject({ code: 'INVALID_INPUT' });
    }
    const error = await codeOf(() => createRecalibrator(network, undefined, 63, { mode: 'exact' }));
    expect(error.code).toBe('SHAPE_MISMATCH');
    expect(error.message).toContain('input width 63 does not fit the network');
  });

  it('the shape check runs no rows through the network, and still refuses every shape that does not fit', async () => {
    const { network, inputTransform, inputShape } = loadModel(
      'test/fixtures/torch-model/digits-cnn-torch/1',
    );
    const batches: number[] = [];
    const forward = network.forward.bind(network);
    network.forward = (x) => {
      batches.push(x.shape[0]!);
      return forward(x);
    };
    (await createRecalibrator(network, inputTransform, inputShape, { mode: 'exact' })).abort();
    // Channels, a flat row, and an image too small for the max pooling (its geometry fails).
    for (const [shape, message] of [
      [[2, 8, 8], 'Conv2d expects input [N, 1, H, W]'],
      [[64], 'Conv2d expects input [N, 1, H, W]'],
      [[1, 1, 1], 'MaxPool2d: the output of input'],
    ] as const) {
      const error = await codeOf(() => createRecalibrator(network, undefined, shape));
      expect(error.code).toBe('SHAPE_MISMATCH');
      expect(error.message).toContain(
        `input ${shape.length === 1 ? `width ${shape[0]}` : `shape [${shape.join(', ')}]`} does not fit the network`,
      );
      expect(error.message).toContain(message);
    }
    expect(batches).toEqual([0, 0, 0, 0]);
  });

  it('a batch of no rows and a batch of two meet the same fate in every layer type, for any input shape', () => {
    // Every layer type of normserve.model/v1 (test/fixtures/torch-model/every-layer-torch), in
    // eval mode as the shape check runs it: no layer may check a shape by the batch's data, nor
    // refuse (or divide by) an empty batch.
    const { network, inputShape } = loadModel('test/fixtures/torch-model/every-layer-torch/1');
    network.eval();
    const fate = (shape: readonly number[], n: number) => {
      try {
        return `[${network.forward(Tensor.zeros([n, ...shape])).shape.slice(1)}]`;
      } catch (e) {
        return isNormserveError(e) ? e.code : String(e);
      }
    };
    const shapes: number[][] = [[...inputShape]];
    const sizes = [1, 2, 3, 5, 6, 7, 72];
    for (const a of sizes) {
      shapes.push([a]);
      for (const b of sizes) {
        shapes.push([a, b]);
        for (const c of sizes) shapes.push([a, b, c], [1, a, b, c]);
      }
    }
    const fates = new Set<string>();
    for (const shape of shapes) {
      expect(fate(shape, 0), `[${shape}]`).toBe(fate(shape, 2));
      fates.add(fate(shape, 0));
    }
    // Outputs for the shapes that fit ([2, 6, 6] and the sizes its pooling maps to the same), and
    // refusals.
    expect(fates).toContain('[3]');
    expect(fates).toContain('SHAPE_MISMATCH');
  });

  it('calls must not overlap', async () => {
    const { network, inputTransform } = loadModel(MODEL_DIR);
    // Every pause waits until released (the first push may pause more than once: prefault).
    let released = false;
    const waiting: (() => void)[] = [];
    const recalibrator = createRecalibrator(network, inputTransform, WIDTH, {
      mode: 'exact',
      pause: () =>
        released ? Promise.resolve() : new Promise<void>((resolve) => waiting.push(resolve)),
    });
    const first = recalibrator.push(night.subarray(0, 4 * WIDTH));
    await expect(recalibrator.push(night.subarray(0, 4 * WIDTH))).rejects.toThrow(/still running/);
    released = true;
    for (const resolve of waiting) resolve();
    await first;
    expect(recalibrator.rows).toBe(4);
  });
});

describe('what recalibration never changes', () => {
  for (const mode of MODES) {
    it(`${mode}: γ, β, weights unchanged; only the running statistics move`, async () => {
      const { network, inputTransform } = loadModel(MODEL_DIR);
      const before = snapshot(network);
      await recalibrate(network, inputTransform, WIDTH, night, { mode, batchSize: 64 });
      const after = snapshot(network);
      for (const [name, value] of before) {
        const now = after.get(name)!;
        if (name.endsWith('running_mean') || name.endsWith('running_var')) {
          expect(now, name).not.toEqual(value);
        } else if (name.endsWith('num_batches_tracked')) {
          expect(now, name).toBe(mode === 'running' ? 6n : value);
        } else {
          expect(now, name).toEqual(value);
        }
      }
      expect(network.training).toBe(false);
      expect(network.modules.some((m) => m.training)).toBe(false);
    });
  }
});

describe('shift report', () => {
  /** Linear(2→2) with W = diag(1, 2), then BatchNorm1d(2) with known source statistics. */
  function smallNetwork(): { network: Sequential; bn: BatchNorm } {
    const linear = new Linear({ inFeatures: 2, outFeatures: 2 });
    linear.weight.value.data.set([1, 0, 0, 2]);
    const bn = new BatchNorm1d({ numFeatures: 2 });
    bn.runningMean.data.set([0.5, -1]);
    bn.runningVar.data.set([3, 8]);
    bn.numBatchesTracked = 40;
    return { network: new Sequential([linear, bn]).eval(), bn };
  }
  // Rows alternate (2 ± 1, −3 ± 0.5): after the Linear, channel means 2 and −6, deviations ±1.
  const rows = 6;
  const data = new Float32Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    const sign = r % 2 === 0 ? 1 : -1;
    data[2 * r] = 2 + sign;
    data[2 * r + 1] = -3 + 0.5 * sign;
  }
  const newVar = rows / (rows - 1); // Σ(±1)² / (n − 1)

  it('reports the mean shift in source σ and the σ ratio, ε included', async () => {
    const { network, bn } = smallNetwork();
    const result = await recalibrate(network, undefined, 2, data, { mode: 'exact' });
    expect(Array.from(bn.runningMean.data)).toEqual([2, -6]);
    expect(bn.runningVar.data[0]).toBeCloseTo(newVar, 6);
    expect(bn.runningVar.data[1]).toBeCloseTo(newVar, 6);
    expect(bn.numBatchesTracked).toBe(40);
    const eps = 1e-5;
    const oldStd = [Math.sqrt(3 + eps), Math.sqrt(8 + eps)];
    const newStd = Math.sqrt(newVar + eps);
    const meanShift = (1.5 / oldStd[0]! + 5 / oldStd[1]!) / 2;
    const stdRatio = (newStd / oldStd[0]! + newStd / oldStd[1]!) / 2;
    expect(result.layers).toHaveLength(1);
    const [layer] = result.layers;
    expect(layer).toMatchObject({ index: 1, features: 2 });
    expect(Math.abs(layer!.mean_shift / meanShift - 1)).toBeLessThan(SHIFT_REPORT_RTOL);
    expect(Math.abs(layer!.std_ratio / stdRatio - 1)).toBeLessThan(SHIFT_REPORT_RTOL);
  });

  it('a zero variance cannot divide by zero (ε), and recalibrating twice reports no shift', async () => {
    const { network, bn } = smallNetwork();
    bn.runningVar.data.set([0, 0]);
    const first = await recalibrate(network, undefined, 2, data, { mode: 'exact' });
    expect(Number.isFinite(first.layers[0]!.mean_shift)).toBe(true);
    expect(Number.isFinite(first.layers[0]!.std_ratio)).toBe(true);
    const second = await recalibrate(network, undefined, 2, data, { mode: 'exact' });
    expect(second.layers[0]).toEqual({
      index: 1,
      path: '1',
      features: 2,
      mean_shift: 0,
      std_ratio: 1,
    });
  });

  it('moves with a known input shift on the digits-torch model', async () => {
    // Shifting every pixel by δ moves the first BatchNorm's input mean by δ·W·scale per channel.
    const delta = 0.5;
    const base = loadModel(MODEL_DIR);
    await recalibrate(base.network, base.inputTransform, WIDTH, night, { mode: 'exact' });
    const shifted = loadModel(MODEL_DIR);
    await recalibrate(
      shifted.network,
      shifted.inputTransform,
      WIDTH,
      night.map((x) => x + delta),
      { mode: 'exact' },
    );
    const linear = base.network.modules[0] as Linear;
    const scale = base.inputTransform!.scale;
    const a = base.network.modules[1] as BatchNorm;
    const b = shifted.network.modules[1] as BatchNorm;
    for (let c = 0; c < a.numFeatures; c++) {
      let move = 0;
      for (let i = 0; i < WIDTH; i++)
        move += delta * linear.weight.value.data[c * WIDTH + i]! * scale[i]!;
      const sigma = Math.sqrt(a.runningVar.data[c]! + a.eps);
      // The mean in σ of the first run; the variance relative.
      expect(Math.abs(b.runningMean.data[c]! - a.runningMean.data[c]! - move) / sigma).toBeLessThan(
        INPUT_SHIFT_RTOL,
      );
      expect(Math.abs(b.runningVar.data[c]! / a.runningVar.data[c]! - 1)).toBeLessThan(
        INPUT_SHIFT_RTOL,
      );
    }
  });
});
