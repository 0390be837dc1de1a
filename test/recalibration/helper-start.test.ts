/**
 * The pass that overlaps an upload (the first BatchNorm of `exact`/`prior`) starts its helper
 * thread when the recalibration starts, not with its first chunk: that chunk would otherwise run
 * on the calling thread (a server's event loop) while the helper starts.
 */
import { describe, expect, it } from 'vitest';
import type { HelperSpawner } from '../../src/inference/index.js';
import { createRecalibrator } from '../../src/recalibration/index.js';
import { nodeEngineOptions } from '../../src/service/index.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { TEST_ENGINE } from '../helpers/engine.js';
import { loadModel, nightShift, readDigitRows } from './helpers/digits-fixtures.js';

describe('the first pass helper thread', () => {
  it('is spawned when the recalibrator is made, before any row arrives', async () => {
    const { spawnHelper } = nodeEngineOptions({});
    let spawned = 0;
    const counting: HelperSpawner = (init) => {
      spawned += 1;
      return spawnHelper!(init);
    };
    const { network, inputTransform, inputShape } = loadModel(bundledVersionDir('digits-cnn'));
    const recalibrator = createRecalibrator(network, inputTransform, inputShape, {
      mode: 'exact',
      engine: { engine: TEST_ENGINE, threads: 2, spawnHelper: counting },
    });
    try {
      // The JavaScript engine has no helper threads.
      expect(spawned).toBe(TEST_ENGINE === 'wasm' ? 1 : 0);
      await recalibrator.push(nightShift(readDigitRows().pixels));
      await recalibrator.finish();
      expect(spawned).toBe(TEST_ENGINE === 'wasm' ? 1 : 0);
    } finally {
      await recalibrator.abort();
    }
  });
});
