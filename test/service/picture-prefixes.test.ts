/**
 * The prefix plans of the pictures, with their executors, are made once per version's plan: an
 * executor per layer and call left a wasm memory per layer to a full collection, and a server
 * polled by a dashboard grew by gigabytes before one ran.
 */
import { describe, expect, it } from 'vitest';
import { compileNetwork, createExecutor } from '../../src/inference/index.js';
import { layerPictures, picturePrefixes } from '../../src/service/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { pictureSource } from '../helpers/picture-source.js';

describe('picturePrefixes', () => {
  it('makes one prefix and executor per BatchNorm once per plan and engine', async () => {
    const cnn = await pictureSource(bundledVersionDir('digits-cnn'), 'wasm');
    const first = picturePrefixes(cnn);
    expect(first.map((p) => p.path)).toEqual(['1', '3.body.1', '3.body.4', '6']);
    expect(first.every((p) => p.executor.engine === 'wasm')).toBe(true);
    expect(picturePrefixes(cnn)).toBe(first);
    // Another plan of the same network, or another engine: prefixes of its own.
    const again = { ...cnn, plan: compileNetwork(cnn.network, cnn.inputTransform, cnn.inputShape) };
    expect(picturePrefixes(again)).not.toBe(first);
    const js = picturePrefixes({ ...cnn, engine: 'js' });
    expect(js).not.toBe(first);
    expect(js.every((p) => p.executor.engine === 'js')).toBe(true);
  });

  it('draws the same pictures on every call, through the kept executors, for any number of rows', async () => {
    const digits = await pictureSource(bundledVersionDir('digits'), 'wasm');
    const input = Float32Array.from(digitsTestRows().x.slice(0, 300).flat());
    const once = layerPictures(digits, input, 300);
    const executors = picturePrefixes(digits).map((p) => p.executor);
    expect(layerPictures(digits, input, 300)).toStrictEqual(once);
    expect(picturePrefixes(digits).map((p) => p.executor)).toEqual(executors);
    // 300 rows are more than a kept executor holds at once (256): run in two slices, bit for bit
    // what one executor of 300 rows computes (rows are independent).
    for (const prefix of picturePrefixes(digits)) {
      const whole = createExecutor(prefix.plan, { engine: 'wasm', maxBatchSize: 300 });
      expect(prefix.executor.run(input, 300)).toStrictEqual(whole.run(input, 300));
    }
  });
});
