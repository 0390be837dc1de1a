/**
 * quote() and printable(): what a message echoes of a client's string or of a file stays one short
 * printable line. JSON.stringify alone escaped C0 controls but left DEL, C1 controls, bidi
 * overrides and line separators raw, and its cut was of the value, so 64 control characters
 * became 384 characters of escapes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ECHO_CHARS, printable, quote, quoteList } from '../../src/errors/index.js';

/** A character a terminal line shows as itself: no control, format, separator or unassigned. */
const SHOWN = /^[^\p{C}\p{Z}]$/u;

describe('quote', () => {
  it('quotes a short value as JSON does', () => {
    expect(quote('abc')).toBe('"abc"');
    expect(quote('a "b" \\ c')).toBe('"a \\"b\\" \\\\ c"');
    expect(quote('1 000')).toBe('"1 000"');
    expect(quote('naïve 日本 🙂')).toBe('"naïve 日本 🙂"');
  });

  it('escapes what a terminal cannot show: controls, DEL, C1, bidi, separators, odd spaces', () => {
    expect(quote('a\u0000b\nc\td\u0007')).toBe('"a\\u0000b\\nc\\td\\u0007"');
    expect(quote('\u007f\u0085\u009b')).toBe('"\\u007f\\u0085\\u009b"');
    expect(quote('abc\u202edef\u2066')).toBe('"abc\\u202edef\\u2066"');
    expect(quote('x\u2028y\u2029z')).toBe('"x\\u2028y\\u2029z"');
    expect(quote('1\u00a0000\u200b\ufeff')).toBe('"1\\u00a0000\\u200b\\ufeff"');
    expect(quote('\ud800 \udc00')).toBe('"\\ud800 \\udc00"');
    expect(quote('\u{f0000}')).toBe('"\\udb80\\udc00"');
  });

  it('cuts to ECHO_CHARS characters of quoted text, escapes counted, marked …', () => {
    expect(quote('x'.repeat(ECHO_CHARS))).toBe(`"${'x'.repeat(ECHO_CHARS)}"`);
    expect(quote('x'.repeat(ECHO_CHARS + 1))).toBe(`"${'x'.repeat(ECHO_CHARS)}…"`);
    // Ten escapes of six characters fit in 64, an eleventh does not.
    expect(quote('\u0001'.repeat(500))).toBe(`"${'\\u0001'.repeat(10)}…"`);
    // A character is never split: the emoji's two code units go whole or not at all.
    expect(quote(`${'x'.repeat(ECHO_CHARS - 1)}🙂`)).toBe(`"${'x'.repeat(ECHO_CHARS - 1)}…"`);
  });

  it('any string: one printable line of at most ECHO_CHARS + 3 characters', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (s) => {
        const q = quote(s);
        expect(q.length).toBeLessThanOrEqual(ECHO_CHARS + 3);
        expect([...q].every((c) => c === ' ' || SHOWN.test(c))).toBe(true);
        // Uncut, it reads back as the value.
        if (!q.endsWith('…"')) expect(JSON.parse(q)).toBe(s);
      }),
    );
  });
});

describe('printable', () => {
  it('escapes unprintable characters only; quotes and backslashes stay as they are', () => {
    expect(printable(`Unexpected token '\u0001', "ab\u0002"... is not valid JSON`)).toBe(
      `Unexpected token '\\u0001', "ab\\u0002"... is not valid JSON`,
    );
    expect(printable('a\\b "c"\n')).toBe('a\\b "c"\\n');
  });
});

describe('quoteList', () => {
  it('quotes each value and lists as many as fit in maxChars, one at least', () => {
    expect(quoteList(['a', 'b'])).toBe('"a", "b"');
    expect(quoteList(['a', 'b', 'c', 'd'], 8)).toBe('"a", "b", … and 2 more');
    expect(quoteList(['x'.repeat(100), 'b'], 8)).toBe(`"${'x'.repeat(ECHO_CHARS)}…", … and 1 more`);
    const many = Array.from({ length: 1000 }, () => '\u0000'.repeat(100));
    expect(quoteList(many).length).toBeLessThan(2 * ECHO_CHARS + 20);
  });

  it('with keepLast, a cut list ends with the last value', () => {
    expect(quoteList(['a', 'b', 'c', 'd', 'e'], 8, true)).toBe('"a", "b", … 2 more …, "e"');
    expect(quoteList(['a', 'b', 'c'], 8, true)).toBe('"a", "b", "c"');
    expect(quoteList(['a', 'b'], 8, true)).toBe('"a", "b"');
    const many = Array.from({ length: 1000 }, () => '\u0000'.repeat(100));
    expect(quoteList(many, undefined, true).length).toBeLessThan(3 * ECHO_CHARS + 30);
  });
});
