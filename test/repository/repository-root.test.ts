/**
 * A MODEL_REPOSITORY that cannot be listed is named with the variable and the reason in words,
 * not as a bare errno (review60: `ENOTDIR: not a directory, scandir '/tmp/afile'`).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ModelRepository } from '../../src/repository/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

describe('ModelRepository.listModels of a root it cannot list', () => {
  const dir = makeTempDir('repository-root');

  it.each([
    ['a missing directory', join(dir, 'nope'), 'does not exist'],
    ['a file', join(dir, 'afile'), 'is not a directory'],
  ])('%s', async (_what, root, why) => {
    writeFileSync(join(dir, 'afile'), '');
    await expect(new ModelRepository(root).listModels()).rejects.toMatchObject({
      code: 'REPOSITORY_ERROR',
      message: `model repository ${root} ${why} (MODEL_REPOSITORY)`,
    });
  });
});
