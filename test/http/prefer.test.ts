import { describe, expect, it } from 'vitest';
import { preferenceNames } from '../../src/http/prefer.js';

const names = (header: string | string[] | undefined) => [...preferenceNames(header)].sort();

describe('preferenceNames (RFC 7240 §2)', () => {
  it('names each preference of a list, case-insensitively, without its value or parameters', () => {
    expect(names('respond-async, wait=10')).toEqual(['respond-async', 'wait']);
    expect(names('Respond-Async')).toEqual(['respond-async']);
    expect(names('return=minimal; foo="a, b", respond-async')).toEqual(['respond-async', 'return']);
    expect(names(' respond-async ;x=1 ')).toEqual(['respond-async']);
  });

  it('reads repeated headers as one list', () => {
    expect(names(['wait=5', 'respond-async'])).toEqual(['respond-async', 'wait']);
  });

  it('does not take a value, a parameter or a longer name for a preference', () => {
    expect(names('x-respond-async')).toEqual(['x-respond-async']);
    expect(names('handling=respond-async')).toEqual(['handling']);
    expect(names('foo; respond-async')).toEqual(['foo']);
    expect(names('foo="respond-async, x"')).toEqual(['foo']);
    expect(names('foo="a \\" , respond-async"')).toEqual(['foo']);
    expect(names('respond async')).toEqual(['respond']);
  });

  it('names nothing for an absent, empty or comma-only header', () => {
    expect(names(undefined)).toEqual([]);
    expect(names('')).toEqual([]);
    expect(names(' , ,')).toEqual([]);
  });
});
