import { describe, expect, it } from 'vitest';
import { ECHO_CHARS, formatPath } from '../../src/errors/index.js';

describe('formatPath', () => {
  it('writes identifiers as they are and indices in brackets', () => {
    expect(formatPath(['instances', 3, 17])).toBe('instances[3][17]');
    expect(formatPath(['layers', 2, 'type'], 'config')).toBe('config.layers[2].type');
    expect(formatPath([])).toBe('(root)');
  });

  it('quotes any other key, its unprintable characters and quotes escaped', () => {
    expect(formatPath(['foo\u0000"bar'])).toBe('["foo\\u0000\\"bar"]');
    expect(formatPath(['x-y', 'a.b', ''], 'query')).toBe('query["x-y"]["a.b"][""]');
    expect(formatPath(['line\nbreak\u202e'])).toBe('["line\\nbreak\\u202e"]');
  });

  it('cuts a long key like every echoed string, identifier or not', () => {
    const long = 'k'.repeat(10 * ECHO_CHARS);
    expect(formatPath([long])).toBe(`["${'k'.repeat(ECHO_CHARS)}…"]`);
    expect(formatPath(['k'.repeat(ECHO_CHARS)])).toBe('k'.repeat(ECHO_CHARS));
  });
});
