/**
 * layerPictures draws, bit for bit, what it drew before it was made faster (the frozen copy in
 * helpers/reference-pictures.ts): every BatchNorm's "before" values are its prefix plan's output,
 * and every histogram, range and statistic follows from them exactly. On the bundled MLP, the
 * bundled CNN (a residual block) and a PyTorch-trained network with every layer type, on both
 * engines, for a kept batch's rows and more; and so does layerPicturesInTurns, which draws them
 * over several turns of the event loop.
 */
import { describe, expect, it } from 'vitest';
import { buildSequential, layerSchema } from '../../src/checkpoint/index.js';
import { compileNetwork } from '../../src/inference/index.js';
import { BatchNorm1d, Rng } from '../../src/nn/index.js';
import { layerPictures, layerPicturesInTurns } from '../../src/service/index.js';
import { normalise } from '../../src/service/layer-pictures.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsRows } from '../helpers/digits.js';
import { pictureSource } from '../helpers/picture-source.js';
import { referencePictures } from '../helpers/reference-pictures.js';

/** Seeded rows in [−2, 2) (mulberry32), with exact zeros of both signs among them. */
function seededRows(rows: number, width: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return Float32Array.from({ length: rows * width }, (_, i) =>
    i % 97 === 0 ? (i % 2 === 0 ? 0 : -0) : 4 * next() - 2,
  );
}

/** Decimal places a live std must match in: float64's, less the sums' rounding over 300 rows. */
const STD_DIGITS = 12;

const digits = (rows: number) => Float32Array.from(digitsRows(0, rows).x.flat());

describe('layerPictures', () => {
  for (const engine of ['wasm', 'js'] as const) {
    it(`draws the pictures it drew before, bit for bit (${engine})`, async () => {
      const cases: [string, (rows: number) => Float32Array][] = [
        [bundledVersionDir('digits'), digits],
        [bundledVersionDir('digits-cnn'), digits],
        ['test/fixtures/torch-model/every-layer-torch', (rows) => seededRows(rows, 72, 7)],
      ];
      for (const [dir, rowsOf] of cases) {
        const picture = await pictureSource(dir, engine);
        for (const rows of [1, 256, 300]) {
          const input = rowsOf(rows);
          const drawn = layerPictures(picture, input, rows);
          expect(drawn.length).toBeGreaterThan(1);
          const reference = referencePictures(picture, input, rows);
          expect(drawn, `${dir}, ${rows} rows`).toStrictEqual(reference);
          expect(await layerPicturesInTurns(picture, input, rows)).toStrictEqual(reference);
        }
      }
    });
  }

  it('in turns, lets other callbacks run while it draws, and two drawings at once stay apart', async () => {
    const cnn = await pictureSource(bundledVersionDir('digits-cnn'), 'wasm');
    const a = digits(256);
    const b = Float32Array.from(digitsRows(256, 512).x.flat());
    // A first drawing leaves the version's arrays kept for the next ones.
    const once = layerPictures(cnn, a, 256);
    const order: string[] = [];
    const drawings = [
      layerPicturesInTurns(cnn, a, 256).then((p) => {
        order.push('a drawn');
        return p;
      }),
      layerPicturesInTurns(cnn, b, 256).then((p) => {
        order.push('b drawn');
        return p;
      }),
    ];
    setImmediate(() => order.push('another callback'));
    const [pa, pb] = await Promise.all(drawings);
    expect(order[0]).toBe('another callback');
    // Both used the version's kept executors and arrays at once, each its own rows.
    expect(pa).toStrictEqual(referencePictures(cnn, a, 256));
    expect(pb).toStrictEqual(referencePictures(cnn, b, 256));
    expect(pa).toStrictEqual(once);
  });

  it('counts the outputs below 0 from their sign bits: not −0, not NaN, −∞ yes', () => {
    const bn = new BatchNorm1d({ numFeatures: 4 });
    bn.runningMean.data.set([0, 1, 0, 0]);
    // γ = 0 and β = −0 (channel 2) give ±0 outputs; channel 3's β = −∞ gives −∞ and, with x = +∞, NaN.
    bn.weight!.value.data.set([1, 1, 0, 1]);
    bn.bias!.value.data.set([0, 0, -0, Number.NEGATIVE_INFINITY]);
    const std = Array.from(bn.runningVar.data, (v) => Math.sqrt(v + bn.eps));
    const x = Float32Array.from([
      -1,
      1,
      -5,
      2,
      3,
      0.5,
      5,
      Number.POSITIVE_INFINITY,
      Number.NaN,
      -0,
      -3,
      1,
    ]);
    const y = new Float64Array(x.length);
    const { negative } = normalise(bn, std, x, y, 3, 1);
    expect(y.some((v) => Object.is(v, -0))).toBe(true);
    expect(y.some((v) => Number.isNaN(v))).toBe(true);
    expect(negative).toBe(y.filter((v) => v < 0).length);
  });

  it('a channel whose mean is large against its spread: the live std of the values, not of cancellation', () => {
    // Channel 0 holds 10⁶ + k/16 (exact float32 values, 1/16 is their spacing there), k cycling
    // −2..2: mean 10⁶, M2 = n/5·(4 + 1 + 0 + 1 + 4)/256. Σx² − mean·Σx cancels 14 of float64's 16
    // digits there (Σx² ≈ 3·10¹⁴, whose spacing is 1/16); channel 1, centred, is the control.
    const rows = 300;
    const network = buildSequential([layerSchema.parse({ type: 'batchnorm1d', num_features: 2 })], {
      init: new Rng(1),
    }).eval();
    const x = Float32Array.from({ length: rows * 2 }, (_, i) =>
      i % 2 === 0 ? 1e6 + (((i >> 1) % 5) - 2) / 16 : (((i >> 1) % 5) - 2) / 16,
    );
    const m2 = (rows / 5) * (10 / 256);
    const expected = Math.sqrt(m2 / (rows - 1) + 1e-5);
    for (const engine of ['wasm', 'js'] as const) {
      const source = {
        network,
        inputTransform: undefined,
        inputShape: [2],
        plan: compileNetwork(network, undefined, [2]),
        engine,
      };
      const [picture] = layerPictures(source, x, rows);
      expect(picture!.live.mean).toEqual([1e6, 0]);
      for (const std of picture!.live.std) expect(std).toBeCloseTo(expected, STD_DIGITS);
    }
  });
});
