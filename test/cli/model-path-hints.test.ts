/**
 * `--model` given one level off: a repository (`models` for `models/digits`) names the models in
 * it; recalibrate given a version directory says to give the model directory (it said
 * `model "1" has no available version (no version directories)`).
 */
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRepository } from '../helpers/app.js';
import { runEntry as run } from '../helpers/entries.js';

const repository = makeRepository(['digits']);
afterAll(() => rmSync(repository, { recursive: true, force: true }));

describe('--model one level off', () => {
  it('predict --model <repository> names a model in it', () => {
    const result = run('src/cli/predict.ts', [
      '--model',
      repository,
      '--input',
      'data/digits/digits.csv',
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      `predict: ${repository}: no model version directories (expected ${repository}/<version>/); it is a model repository: give one of its models, e.g. ${join(repository, 'digits')}\n`,
    );
  });

  it('recalibrate --model <version directory> asks for the model directory and publishes nothing', () => {
    const version = join(repository, 'digits', '1');
    const result = run('src/cli/recalibrate.ts', [
      '--model',
      version,
      '--data',
      'data/digits/digits.csv',
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      `recalibrate: --model ${version} is a version directory; give its model directory ${join(repository, 'digits')} (the new version's parent is the active version; activate another one first to start from it)\n`,
    );
    expect(readdirSync(join(repository, 'digits'))).toEqual(['1']);
  });

  it('recalibrate --model <repository> names a model in it', () => {
    const result = run('src/cli/recalibrate.ts', [
      '--model',
      repository,
      '--data',
      'data/digits/digits.csv',
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('it is a model repository: give one of its models, e.g.');
  });

  it('a model whose name is a number: <repo>/123 is its directory, <repo>/123/1 a version', () => {
    // Read by what the directory holds, not its name: `123` was taken for a version directory,
    // and recalibrate said "config.json is missing" for one and "give its model directory" for
    // the other (review of 2026-12-04), so such a model could not be recalibrated at all.
    const numeric = makeRepository(['digits']);
    try {
      renameSync(join(numeric, 'digits'), join(numeric, '123'));
      const config = join(numeric, '123', '1', 'config.json');
      writeFileSync(
        config,
        JSON.stringify({ ...(JSON.parse(readFileSync(config, 'utf8')) as object), name: '123' }),
      );
      const version = join(numeric, '123', '1');
      const refused = run('src/cli/recalibrate.ts', [
        '--model',
        version,
        '--data',
        'data/digits/digits.csv',
      ]);
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(
        new RegExp(
          `^recalibrate: --model ${version} is a version directory; give its model directory ${join(numeric, '123')} `,
        ),
      );
      const done = run('src/cli/recalibrate.ts', [
        '--model',
        join(numeric, '123'),
        '--data',
        'data/digits/digits.csv',
      ]);
      expect(done.status, done.stderr).toBe(0);
      expect(
        readdirSync(join(numeric, '123'))
          .filter((n) => /^\d+$/.test(n))
          .sort(),
      ).toEqual(['1', '2']);
    } finally {
      rmSync(numeric, { recursive: true, force: true });
    }
  });
});
