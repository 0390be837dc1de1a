/**
 * errnoOf (src/errors/errno.ts): the errno code of whatever was thrown, if it has one. Anything may
 * be thrown: the cast it replaces threw a TypeError on `null` and `undefined`, inside a catch.
 */
import { describe, expect, it } from 'vitest';
import { errnoOf } from '../../src/errors/index.js';

describe('errnoOf', () => {
  it("reads a system call's error code", async () => {
    const { readFile } = await import('node:fs/promises');
    const e = await readFile('/nonexistent/normserve-errno-test').catch((x: unknown) => x);
    expect(errnoOf(e)).toBe('ENOENT');
    expect(errnoOf(Object.assign(new Error('busy'), { code: 'EBUSY' }))).toBe('EBUSY');
  });

  it('is undefined for anything without a string code, null and undefined included', () => {
    for (const thrown of [null, undefined, 'ENOENT', 42, new Error('no code'), { code: 5 }, {}])
      expect(errnoOf(thrown)).toBeUndefined();
  });
});
