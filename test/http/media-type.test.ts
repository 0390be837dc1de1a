/**
 * A Content-Type read in one place (src/http/media-type.ts): its media type without parameters,
 * and its parameters, a `;` inside a quoted value kept in it (RFC 9110 §5.6.4; h263:
 * `foo="x;charset=latin1"` was read as a charset `latin1"` and answered 415).
 */
import { describe, expect, it } from 'vitest';
import { mediaTypeOf, mediaTypeParameters } from '../../src/http/media-type.js';

describe('mediaTypeOf', () => {
  it('is the type and subtype, lower-cased, without parameters; empty for no header', () => {
    expect(mediaTypeOf('Text/CSV; charset=utf-8')).toBe('text/csv');
    expect(mediaTypeOf(' application/json ')).toBe('application/json');
    expect(mediaTypeOf(undefined)).toBe('');
    expect(mediaTypeOf(';')).toBe('');
  });
});

describe('mediaTypeParameters', () => {
  it('names lower-cased, values unquoted', () => {
    expect([...mediaTypeParameters('text/csv; Charset="UTF-8"; header=present')]).toEqual([
      ['charset', 'UTF-8'],
      ['header', 'present'],
    ]);
  });
  it('keeps a ";" inside a quoted value (escaped quotes included) in that value', () => {
    expect([...mediaTypeParameters('text/csv; foo="x;charset=latin1"')]).toEqual([
      ['foo', 'x;charset=latin1'],
    ]);
    expect([...mediaTypeParameters('text/csv; foo="a\\";b"; charset=utf-8')]).toEqual([
      ['foo', 'a\\";b'],
      ['charset', 'utf-8'],
    ]);
  });
  it("reads a stray quote (not at a value's start), or one never closed, as a plain character (h264)", () => {
    expect(mediaTypeParameters('text/csv; a=b"c; charset=latin1').get('charset')).toBe('latin1');
    expect(mediaTypeParameters('text/csv; x="; header=absent').get('header')).toBe('absent');
    expect(mediaTypeParameters('text/csv; charset=utf-8\\').get('charset')).toBe('utf-8\\');
  });
});
