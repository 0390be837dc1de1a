/**
 * `--model` / `--init` paths of the CLIs (loadModelDirectory): a directory that does not exist is
 * reported as such, not as a version whose config.json or weights are missing.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelDirectory } from '../../src/repository/index.js';
import { bundledVersionDir, copyBundledModel } from '../helpers/bundled-models.js';
import { clearFsFaults, injectFsFaults } from '../helpers/fs-faults.mjs';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
afterAll(removeTempDirs);

/** A repository of its own whose digits has versions 1 and 3 (the checkout's models/ may hold more). */
const repository = makeTempDir('model-directory');
copyBundledModel('digits', repository);
copyBundledModel('digits', repository, { version: 3 });

describe('loadModelDirectory', () => {
  it.each([
    ['models/nope', 'models/nope: no such directory'],
    // A bundled model named alone (the tests run in the checkout, as npm run does).
    [
      'digits',
      "digits: no such directory (did you mean models/digits? a model is named by its directory's path)",
    ],
    ['nope', 'nope: no such directory'],
    ['models/nope/1', 'models/nope/1: no such directory'],
    ['/tmp/normserve-nowhere/x/3', '/tmp/normserve-nowhere/x/3: no such directory'],
    [
      join(repository, 'digits', '7'),
      `${join(repository, 'digits', '7')}: no such directory (${join(repository, 'digits')} has versions 1, 3)`,
    ],
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

  it('an existing model (its highest version) and version still load', async () => {
    expect((await loadModelDirectory(join(repository, 'digits'))).version).toBe(3);
    expect((await loadModelDirectory(join(repository, 'digits', '1'))).version).toBe(1);
    expect((await loadModelDirectory(bundledVersionDir('digits'))).name).toBe('digits');
  });

  it('the active-version record chooses; one naming a deleted version falls back to the highest, as the server does', async () => {
    // review58: the CLIs refused what a starting server serves (docs/model-format.md).
    const own = makeTempDir('model-directory-record');
    copyBundledModel('digits', own);
    copyBundledModel('digits', own, { version: 3 });
    const record = join(own, 'digits', 'active-version.json');
    writeFileSync(record, JSON.stringify({ version: 1 }));
    expect(await loadModelDirectory(join(own, 'digits'))).toMatchObject({ version: 1 });
    expect((await loadModelDirectory(join(own, 'digits'))).versionNote).toBeUndefined();
    writeFileSync(record, JSON.stringify({ version: 2 }));
    const problem = `${join(own, 'digits')}/active-version.json names version 2, which does not exist; using version 3, the highest, as the server does until a version is activated`;
    expect(await loadModelDirectory(join(own, 'digits'))).toMatchObject({
      version: 3,
      versionNote: problem,
    });
    const result = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        'src/cli/predict.ts',
        '--model',
        join(own, 'digits'),
        '--input',
        'data/digits/digits.csv',
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
    );
    expect(result.stderr).toMatch(
      new RegExp(`^predict: ${problem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`),
    );
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout.split('\n')[0]!)).toMatchObject({ model_version: 3 });
  });

  it('without a record, the highest version that loads, the broken ones above it named, as the server serves it', async () => {
    // h248: a truncated digits/2 made every CLI fail while a server on the same directory served 1.
    const own = makeTempDir('model-directory-broken');
    copyBundledModel('digits', own);
    copyBundledModel('digits', own, { version: 2 });
    copyBundledModel('digits', own, { version: 3 });
    for (const broken of ['2', '3']) {
      const file = join(own, 'digits', broken, 'model.safetensors');
      writeFileSync(file, readFileSync(file).subarray(0, 70_000));
    }
    const opened = await loadModelDirectory(join(own, 'digits'));
    expect(opened.version).toBe(1);
    expect(opened.versionNote).toMatch(
      /^digits\/3\/model\.safetensors: .*; digits\/2\/model\.safetensors: .*; using version 1, the highest that loads, as the server does$/,
    );
    // A record naming a version that fails to load is that failure (the server serves nothing).
    writeFileSync(join(own, 'digits', 'active-version.json'), JSON.stringify({ version: 3 }));
    await expect(loadModelDirectory(join(own, 'digits'))).rejects.toThrow(
      /^digits\/3\/model\.safetensors: /,
    );
    // A read that fails (EIO) is no broken version: the failure, not an older version.
    rmSync(join(own, 'digits', 'active-version.json'));
    copyBundledModel('digits', own, { version: 4 });
    injectFsFaults([{ op: 'open', path: join('digits', '4', 'model.safetensors'), code: 'EIO' }]);
    try {
      await expect(loadModelDirectory(join(own, 'digits'))).rejects.toMatchObject({
        code: 'REPOSITORY_ERROR',
        message: expect.stringMatching(/^digits\/4\/model\.safetensors: cannot be read \(EIO\)/),
      });
    } finally {
      clearFsFaults();
    }
    // A file that is no regular file is broken for good, as a server sees it: passed over.
    const weights = join(own, 'digits', '4', 'model.safetensors');
    rmSync(weights);
    expect(spawnSync('mkfifo', [weights]).status).toBe(0);
    const overFifo = await loadModelDirectory(join(own, 'digits'));
    expect(overFifo.version).toBe(1);
    expect(overFifo.versionNote).toMatch(/^digits\/4\/model\.safetensors: not a regular file; /);
    rmSync(join(own, 'digits', '4'), { recursive: true });
    // None loads: the highest one's failure.
    rmSync(join(own, 'digits', '1'), { recursive: true });
    await expect(loadModelDirectory(join(own, 'digits'))).rejects.toThrow(
      /^digits\/3\/model\.safetensors: /,
    );
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
