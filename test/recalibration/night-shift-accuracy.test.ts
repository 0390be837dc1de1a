/**
 * The point of AdaBN on the project's bundled model (models/digits/1, raw pixels 0..16 with its
 * own input_transform): the "night" shift wrecks accuracy, `exact` recalibration on the 360
 * unlabeled night rows restores it to within a point of the clean accuracy.
 */
import { describe, expect, it } from 'vitest';
import { CompiledModel } from '../../src/inference/index.js';
import { recalibrate } from '../../src/recalibration/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import {
  accuracy,
  argmaxRows,
  type LoadedModel,
  loadModel,
  nightShift,
  readDigitRows,
} from './helpers/digits-fixtures.js';
import {
  NIGHT_ACCURACY_MAX,
  RECALIBRATED_ACCURACY_MARGIN,
} from './helpers/recalibration-tolerances.js';

const MODEL_DIR = bundledVersionDir('digits');

function accuracyOf(model: LoadedModel, x: Float32Array, labels: readonly number[]): number {
  const rows = labels.length;
  const compiled = new CompiledModel(model.network, model.inputTransform, rows, model.inputShape);
  return accuracy(argmaxRows(compiled.forward(x, rows), 10), labels);
}

describe('night shift on the bundled digits model', () => {
  it('exact recalibration restores the clean accuracy', async () => {
    const { pixels, labels } = readDigitRows();
    expect(labels).toHaveLength(360);
    const night = nightShift(pixels);
    const model = loadModel(MODEL_DIR);
    expect(model.inputTransform).toBeDefined();

    const clean = accuracyOf(model, pixels, labels);
    const shifted = accuracyOf(model, night, labels);
    const copy = loadModel(MODEL_DIR); // recalibration mutates: a private copy
    const result = await recalibrate(copy.network, copy.inputTransform, copy.inputWidth, night, {
      mode: 'exact',
    });
    const recalibrated = accuracyOf(copy, night, labels);
    console.log(
      `models/digits/1 on the 360 test rows: clean ${clean.toFixed(4)}, night ${shifted.toFixed(4)}, ` +
        `night after exact recalibration ${recalibrated.toFixed(4)} ` +
        `(shift report ${JSON.stringify(result.layers)})`,
    );

    expect(shifted).toBeLessThan(NIGHT_ACCURACY_MAX);
    expect(recalibrated).toBeGreaterThanOrEqual(clean - RECALIBRATED_ACCURACY_MARGIN);
    // The original model is untouched: clean accuracy is still the same.
    expect(accuracyOf(model, pixels, labels)).toBe(clean);
  });
});
