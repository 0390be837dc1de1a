/**
 * openModelDirectory (npm run predict, export:onnx) opens one version: a model directory with many
 * versions does not have the others read or compiled.
 */
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ModelRepository } from '../../src/repository/index.js';
import { openModelDirectory } from '../../src/service/index.js';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);
afterEach(() => vi.restoreAllMocks());

const repository = makeTempDir('open-model-directory');
for (const version of [1, 2, 3, 4]) copyBundledModel('digits', repository, { version });

describe('openModelDirectory', () => {
  it.each([
    ['a version directory', join(repository, 'digits', '3'), 3],
    ['a model directory (its highest version)', join(repository, 'digits'), 4],
  ])('%s: reads that version only, once', async (_, dir, version) => {
    const loads = vi.spyOn(ModelRepository.prototype, 'loadVersion');
    const opened = await openModelDirectory(dir);
    expect(opened.version).toBe(version);
    expect(loads.mock.calls).toEqual([['digits', version]]);
    const out = opened.predict([new Array(opened.inputWidth).fill(0)]);
    expect([out.version, out.rows, out.labels?.length]).toEqual([version, 1, 1]);
    expect(loads).toHaveBeenCalledTimes(1);
  });
});
