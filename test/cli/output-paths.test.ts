/**
 * An output path that cannot be written (a file where a directory must be, a directory under a
 * file): train, report and export:onnx say so in one line and exit 1 — never a stack trace — and
 * train says it before training, not after.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { runEntry as run } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

/** The bundled digits version (not models/digits: `npm run train` may have added versions). */
const DIGITS = bundledVersionDir('digits');

const dir = makeTempDir('output-paths');
afterAll(() => removeTempDirs());
const aFile = join(dir, 'a-file');
writeFileSync(aFile, 'not a directory\n');

const IN_THE_WAY = 'a file is in the way (the path, or a directory on it, is a file)';

describe('outputs that cannot be written', () => {
  it('train --out <a file>: one line before any epoch, exit 1', () => {
    const result = run('src/cli/train.ts', [
      '--config',
      'configs/iris-mlp.json',
      '--no-progress',
      '--out',
      aFile,
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(`train: --out ${aFile}: cannot write there: ${IN_THE_WAY}\n`);
    expect(result.stdout).toBe('');
  });

  it('train --out <dir> where <dir>/<model name> is a file: one line before any epoch, exit 1', () => {
    const repository = join(dir, 'repository');
    mkdirSync(repository);
    writeFileSync(join(repository, 'iris'), '');
    const result = run('src/cli/train.ts', [
      '--config',
      'configs/iris-mlp.json',
      '--no-progress',
      '--out',
      repository,
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      `train: --out ${repository}: cannot write there: ${join(repository, 'iris')} is a file, not a model directory\n`,
    );
  });

  // It trained to the end, then failed naming --out instead of the path in the way.
  it('train --out <dir> where the next version directory is a file: one line before any epoch', () => {
    const repository = join(dir, 'version-in-the-way');
    mkdirSync(join(repository, 'iris', '1'), { recursive: true });
    writeFileSync(join(repository, 'iris', '2'), 'x\n');
    const result = run('src/cli/train.ts', [
      '--config',
      'configs/iris-mlp.json',
      '--no-progress',
      '--out',
      repository,
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      `train: --out ${repository}: cannot write there: ${join(repository, 'iris', '2')} (where version 2 of model "iris" goes) is already a file\n`,
    );
    expect(result.stdout).toBe('');
  });

  // Node's recursive mkdir never settled there: the run trained to the end, then hung.
  it.skipIf(!existsSync('/proc/self'))(
    'train --out /proc/x (mkdir fails with ENOENT): one line, exit 1',
    () => {
      const result = run('src/cli/train.ts', [
        '--config',
        'configs/iris-mlp.json',
        '--no-progress',
        '--out',
        '/proc/x/models',
      ]);
      expect(result.status, result.stderr).toBe(1);
      expect(result.stderr).toBe(
        'train: --out /proc/x/models: cannot write there: no such directory\n',
      );
    },
  );

  it('train --out <new nested dirs> creates them', () => {
    const nested = join(dir, 'a', 'b', 'models');
    const result = run('src/cli/train.ts', [
      '--config',
      'configs/iris-mlp.json',
      '--no-progress',
      '--epochs',
      '1',
      '--out',
      nested,
    ]);
    expect(result.status, result.stderr).toBe(0);
    expect(existsSync(join(nested, 'iris', '1', 'model.safetensors'))).toBe(true);
  });

  it('report --out <a file>: one line, exit 1', () => {
    const csv = join(dir, 'rows.csv');
    const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
    const row = (k: number) => Array.from({ length: 64 }, (_, i) => (i * k) % 17).join(',');
    writeFileSync(csv, `${header}\n${row(1)}\n${row(3)}\n${row(5)}\n`);
    const result = run('src/cli/report.ts', ['--model', DIGITS, '--data', csv, '--out', aFile]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(`report: --out ${aFile}: cannot write there: ${IN_THE_WAY}\n`);
  });

  // It wrote its seven SVGs, then failed on the page.
  it('report --out <dir> where <dir>/index.html is a directory: one line, nothing written', () => {
    const csv = join(dir, 'rows-2.csv');
    const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
    const row = (k: number) => Array.from({ length: 64 }, (_, i) => (i * k) % 17).join(',');
    writeFileSync(csv, `${header}\n${row(1)}\n${row(3)}\n${row(5)}\n`);
    const out = join(dir, 'report-blocked');
    mkdirSync(join(out, 'index.html'), { recursive: true });
    const result = run('src/cli/report.ts', ['--model', DIGITS, '--data', csv, '--out', out]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      `report: cannot write ${join(out, 'index.html')}: it is a directory\n`,
    );
    expect(readdirSync(out)).toEqual(['index.html']);
  });

  it('export:onnx --out <a file>/x.onnx: one line, exit 1, no temporary left', () => {
    const target = join(aFile, 'x.onnx');
    const result = run('src/cli/export-onnx.ts', ['--model', DIGITS, '--out', target]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(`export-onnx: --out ${aFile}: cannot write there: ${IN_THE_WAY}\n`);
    expect(existsSync(target)).toBe(false);
  });
});
