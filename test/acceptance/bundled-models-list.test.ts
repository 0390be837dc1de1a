/**
 * test/helpers/bundled-models.ts is the one list of bundled models that tests and benches copy and
 * load: it must name exactly what git tracks under models/, and its copies must hold exactly those
 * versions whatever else `npm run train` wrote next to them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BUNDLED_MODEL_NAMES,
  BUNDLED_MODELS,
  BUNDLED_REPOSITORY,
  bundledVersionDir,
  copyBundledModel,
  copyBundledRepository,
} from '../helpers/bundled-models.js';
import { listTree, makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

/** CI runs on a git clone; a copy of the sources without .git (or without git) has nothing to compare. */
const inGitCheckout =
  spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { encoding: 'utf8' }).stdout?.trim() ===
  'true';

/** The files git tracks under models/, relative to it. */
function trackedModelFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z', '--', BUNDLED_REPOSITORY], { encoding: 'utf8' })
    .split('\0')
    .filter(Boolean)
    .map((path) => path.slice(BUNDLED_REPOSITORY.length + 1))
    .sort();
}

describe('bundled models', () => {
  it.skipIf(!inGitCheckout)(
    'BUNDLED_MODELS names every <model>/<version> git tracks under models/',
    () => {
      const versions = [
        ...new Set(trackedModelFiles().map((f) => f.split('/').slice(0, 2).join('/'))),
      ];
      expect(versions.sort()).toEqual(
        Object.entries(BUNDLED_MODELS)
          .map(([name, version]) => `${name}/${version}`)
          .sort(),
      );
    },
  );

  it.skipIf(!inGitCheckout)('copyBundledRepository copies exactly the tracked files', () => {
    const copy = copyBundledRepository(makeTempDir('bundled'));
    const files = listTree(copy).filter((p) => p.split('/').length === 3);
    expect(files).toEqual(trackedModelFiles());
  });

  it('copies leave out versions and models trained next to the bundled ones', () => {
    // A checkout after the README's Training section: two more digits versions and a penguins model.
    const checkout = makeTempDir('checkout');
    for (const name of BUNDLED_MODEL_NAMES) {
      cpSync(bundledVersionDir(name), bundledVersionDir(name, checkout), { recursive: true });
    }
    for (const extra of ['digits/2', 'digits/3', 'penguins/1']) {
      mkdirSync(join(checkout, BUNDLED_REPOSITORY, extra), { recursive: true });
    }
    const whole = copyBundledRepository(makeTempDir('repo'), checkout);
    expect(listTree(whole).filter((p) => !p.includes('/'))).toEqual(
      [...BUNDLED_MODEL_NAMES].sort(),
    );
    expect(listTree(join(whole, 'digits')).filter((p) => !p.includes('/'))).toEqual(['1']);

    const one = makeTempDir('one');
    const dir = copyBundledModel('digits', one, { as: 'other', version: 4, checkout });
    expect(dir).toBe(join(one, 'other', '4'));
    expect(listTree(one)).toEqual([
      'other',
      'other/4',
      'other/4/config.json',
      'other/4/metrics.json',
      'other/4/model.safetensors',
    ]);
  });
});
