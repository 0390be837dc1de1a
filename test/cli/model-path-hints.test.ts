/**
 * `--model` given one level off: a repository (`models` for `models/digits`) names the models in
 * it; recalibrate given a version directory says to give the model directory (it said
 * `model "1" has no available version (no version directories)`).
 */
import { readdirSync, rmSync } from 'node:fs';
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
});
