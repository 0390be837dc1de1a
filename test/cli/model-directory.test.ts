/**
 * `--model` / `--init` paths of the CLIs (loadModelDirectory): a directory that does not exist is
 * reported as such, not as a version whose config.json or weights are missing.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadModelDirectory } from '../../src/repository/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('loadModelDirectory', () => {
  it.each([
    ['models/nope', 'models/nope: no such directory'],
    ['models/nope/1', 'models/nope/1: no such directory'],
    ['/tmp/normserve-nowhere/x/3', '/tmp/normserve-nowhere/x/3: no such directory'],
    ['models/digits/7', 'models/digits/7: no such directory (models/digits has versions 1)'],
    [
      'package.json',
      'package.json: not a directory (expected <repository>/<model> or <repository>/<model>/<version>)',
    ],
  ])('%s', async (path, message) => {
    await expect(loadModelDirectory(path)).rejects.toMatchObject({
      code: 'MODEL_NOT_FOUND',
      message,
    });
  });

  it('an existing model and version still load', async () => {
    expect((await loadModelDirectory('models/digits')).version).toBe(1);
    expect((await loadModelDirectory('models/digits/1')).name).toBe('digits');
  });

  it('as the predict CLI prints it', () => {
    const result = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/predict.ts',
        '--model',
        'models/nope/1',
        '--input',
        'data/iris/iris.csv',
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toBe('predict: models/nope/1: no such directory\n');
  });
});
