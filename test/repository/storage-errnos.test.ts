/**
 * The errnos the API documents for STORAGE_FULL (507) and STORAGE_UNAVAILABLE (503) are those
 * storage-failure.ts maps to them: read from its one table, not listed by hand.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import { refusedByStorage, storageErrnos, storageFailure } from '../../src/repository/index.js';

const errnoError = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(code), { code, syscall: 'write', path: '/repo/m/1/model.safetensors' });

describe.each(['STORAGE_FULL', 'STORAGE_UNAVAILABLE'] as const)('%s', (code) => {
  it('its errnos are the ones storageFailure maps to it', () => {
    const errnos = storageErrnos(code);
    expect(errnos.length).toBeGreaterThan(0);
    for (const errno of errnos) {
      const mapped = storageFailure(errnoError(errno), 'cannot publish', '/repo');
      expect(mapped).toBeInstanceOf(NormserveError);
      expect((mapped as NormserveError).code).toBe(code);
    }
  });

  it('the OpenAPI document names each of them', () => {
    const doc = readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8');
    for (const errno of storageErrnos(code)) expect(doc).toContain(errno);
  });
});

it('an errno outside the table is not the storage’s', () => {
  expect(storageErrnos('STORAGE_FULL')).toEqual(['ENOSPC', 'EDQUOT']);
  expect(storageFailure(errnoError('EBADF'), 'cannot publish', '/repo')).toBeInstanceOf(Error);
  expect(storageFailure(errnoError('EBADF'), 'cannot publish', '/repo')).not.toBeInstanceOf(
    NormserveError,
  );
});

it('a file that cannot be opened for want of descriptors (EMFILE, ENFILE) is STORAGE_UNAVAILABLE, in strerror’s words (attack review of 2026-12-06: a recalibration failed INTERNAL)', () => {
  for (const [errno, words] of [
    ['EMFILE', 'too many open files'],
    ['ENFILE', 'too many open files in system'],
  ] as const) {
    const mapped = storageFailure(
      Object.assign(new Error(errno), {
        code: errno,
        syscall: 'open',
        path: '/repo/m/1/config.json',
      }),
      'cannot publish',
      '/repo',
    ) as NormserveError;
    expect(mapped.code).toBe('STORAGE_UNAVAILABLE');
    expect(mapped.message).toContain(`${words} (${errno})`);
  }
});

describe('refusedByStorage (a best-effort write’s test)', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: failed`), { code });
  it('is any errno of a file operation, or a failure already worded as the storage’s', () => {
    for (const code of ['EIO', 'ENOSPC', 'EMFILE', 'ESTALE', 'ETIMEDOUT', 'ENOTCONN'])
      expect(refusedByStorage(errno(code)), code).toBe(true);
    expect(refusedByStorage(new NormserveError('STORAGE_FULL', 'full'))).toBe(true);
  });
  it('is never another NormserveError (a lost lock), nor Node’s own codes', () => {
    expect(refusedByStorage(new NormserveError('LOCK_LOST', 'lost'))).toBe(false);
    expect(refusedByStorage(errno('ERR_INVALID_ARG_TYPE'))).toBe(false);
    expect(refusedByStorage(errno('ABORT_ERR'))).toBe(false);
    expect(refusedByStorage(new Error('no code'))).toBe(false);
  });
});
