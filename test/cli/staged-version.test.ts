/**
 * train, interrupted while publishing, says whether its version was published by what its staged
 * directory holds (cli/staged-version.ts), not by the directory's inode: a rename by copy (a FUSE
 * store, overlayfs without xino, CIFS with noserverino) gives the version another inode, and the
 * inode rule said "nothing was written" for a version that was published.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { publishedAs, stagedVersion } from '../../src/cli/staged-version.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterEach(removeTempDirs);

/** A model directory with versions 1 and 2, and a staged version whose metrics name its run. */
function modelWithStaged() {
  const modelDir = join(makeTempDir('staged-version'), 'digits');
  for (const v of ['1', '2']) {
    mkdirSync(join(modelDir, v), { recursive: true });
    writeFileSync(join(modelDir, v, 'metrics.json'), `{"run": ${v}}`);
  }
  const path = join(modelDir, '.tmp-host-1-abc');
  mkdirSync(path);
  writeFileSync(join(path, 'metrics.json'), '{"run": 3}');
  writeFileSync(join(path, 'config.json'), '{}');
  return { modelDir, path, staged: stagedVersion(path) };
}

describe('publishedAs', () => {
  it('is undefined while the directory is still staged', () => {
    const { modelDir, staged } = modelWithStaged();
    expect(publishedAs(modelDir, staged)).toEqual({ published: false });
  });

  it('names the version a rename put it in place as', () => {
    const { modelDir, path, staged } = modelWithStaged();
    renameSync(path, join(modelDir, '3'));
    expect(publishedAs(modelDir, staged)).toEqual({ published: '3' });
  });

  it('names it when the rename gave it another inode (a copy, then the original removed)', () => {
    const { modelDir, path, staged } = modelWithStaged();
    const inode = statSync(path).ino;
    cpSync(path, join(modelDir, '3'), { recursive: true });
    rmSync(path, { recursive: true });
    expect(statSync(join(modelDir, '3')).ino).not.toBe(inode);
    expect(publishedAs(modelDir, staged)).toEqual({ published: '3' });
  });

  it('is undefined when the directory went without a rename (removed), whatever else was published', () => {
    const { modelDir, path, staged } = modelWithStaged();
    rmSync(path, { recursive: true });
    mkdirSync(join(modelDir, '3'));
    writeFileSync(join(modelDir, '3', 'metrics.json'), '{"run": "another train"}');
    expect(publishedAs(modelDir, staged)).toEqual({ published: false });
  });
});

describe('publishedAs, beside hostile version directories', () => {
  it('does not block on a FIFO where a metrics.json should be, and reads only files of the staged one’s size', async () => {
    const { modelDir, path, staged } = modelWithStaged();
    renameSync(path, join(modelDir, '3'));
    mkdirSync(join(modelDir, '4'));
    execFileSync('mkfifo', [join(modelDir, '4', 'metrics.json')]);
    mkdirSync(join(modelDir, '5'));
    writeFileSync(join(modelDir, '5', 'metrics.json'), 'x'.repeat(1 << 20));
    // In a child process: a blocked open would hang it, and the test's timeout would say so.
    const script = `import { publishedAs } from ${JSON.stringify(
      join(process.cwd(), 'src/cli/staged-version.ts'),
    )}; console.log(JSON.stringify(publishedAs(${JSON.stringify(modelDir)}, ${JSON.stringify(staged)})));`;
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(JSON.parse(out)).toEqual({ published: '3' });
  });
});

describe('publishedAs, when it cannot tell', () => {
  it('says so when the staged metrics.json could not be read (no claim either way)', () => {
    const { modelDir, path } = modelWithStaged();
    const staged = { path, metrics: undefined };
    renameSync(path, join(modelDir, '3'));
    expect(publishedAs(modelDir, staged)).toEqual({
      unknown: 'its metrics.json could not be read when it was staged',
    });
  });

  it('says so when the model directory cannot be listed', () => {
    const { modelDir, path, staged } = modelWithStaged();
    rmSync(path, { recursive: true });
    rmSync(modelDir, { recursive: true });
    expect(publishedAs(modelDir, staged)).toEqual({
      unknown: expect.stringMatching(/cannot be listed \(ENOENT\)$/),
    });
  });
});
