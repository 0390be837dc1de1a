/**
 * A version whose publish wrote it but which does not load back (what other processes would
 * see) is deleted again, tombstoned like any deletion: the failed publish leaves no FAILED
 * version behind in the repository, and its number is not given out again. (A recalibration of
 * a version with a 1,351-generation provenance chain wrote a config.json past the 16 MiB cap:
 * answered 500, and left that version listed as FAILED.)
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp, type TestApp } from '../helpers/app.js';

describe('publish of a version that does not load back', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await makeTestApp();
  });
  afterAll(() => t.close());

  const versionDirs = () =>
    readdirSync(join(t.repository, 'digits')).filter((n) => /^\d+$/.test(n));

  it('is REPOSITORY_ERROR, and the version is deleted again', async () => {
    const { config, state } = t.registry.resolve('digits', 1).checkpoint;
    // No tensors: written, then refused by the load check (the config's layers need them).
    await expect(t.registry.publish({ config, state: new Map() }, true)).rejects.toMatchObject({
      code: 'REPOSITORY_ERROR',
      message: expect.stringMatching(/^published version 2 does not load, it was deleted again: /),
    });
    expect(versionDirs()).toEqual(['1']);
    expect(existsSync(join(t.repository, 'digits', '.deleted-2'))).toBe(true);
    expect([...t.registry.get('digits').versions.keys()]).toEqual([1]);
    expect(t.registry.get('digits').active).toBe(1);
    // The next publish takes the next number: 2 is never given out again.
    const published = await t.registry.publish({ config, state }, false);
    expect(published.version).toBe(3);
    expect(versionDirs().sort()).toEqual(['1', '3']);
  });
});
