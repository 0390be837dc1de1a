/**
 * findDuplicateKey jumps between quotes and braces (indexOf) instead of reading every character.
 * Checked against a reference that reads every character and keeps a frame per array and object
 * (the scan it replaced), on random JSON texts whose objects repeat keys often: keys from a small
 * alphabet, some spelled with escapes, strings holding braces, quotes and colons, nested arrays
 * and objects, random whitespace.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findDuplicateKey, parseJsonText, showKeyPath, stringEnd } from '../../src/errors/index.js';

interface Frame {
  isObject: boolean;
  keys: Set<string>;
  parent: Frame | undefined;
  key: string | undefined;
}

/** The reference: every character read, a frame per array and object. */
function referenceDuplicate(
  json: string,
): { key: string; path: string[]; offset: number } | undefined {
  const stack: Frame[] = [];
  let expectKey = false;
  let lastKey = '';
  for (let i = 0; i < json.length; ) {
    const c = json[i];
    const top = stack[stack.length - 1];
    if (c === '"') {
      const j = stringEnd(json, i);
      if (top?.isObject && expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (top.keys.has(key)) {
          const path: string[] = [];
          for (let f: Frame | undefined = top; f; f = f.parent)
            if (f.key !== undefined) path.push(f.key);
          return { key, path: path.reverse(), offset: i };
        }
        top.keys.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '[') {
      stack.push({
        isObject: c === '{',
        keys: new Set(),
        parent: top,
        key: top?.isObject ? lastKey : undefined,
      });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') expectKey = top?.isObject === true;
    i++;
  }
  return undefined;
}

const space = fc.constantFrom('', ' ', '\n', '\t', ' \r\n ');
/** A key as written: a few names, some with an escape that JSON.parse reads as the same name. */
const keyText = fc.constantFrom('"a"', '"b"', '"\\u0061"', '"a\\""', '"{"', '"}:"', '""', '"ab"');
const stringText = fc.constantFrom('"x"', '"{\\"a\\":1}"', '"}}"', '"a"', '"\\\\"', '":"');
const numberText = fc.constantFrom('0', '-1.5', '3e-7', '12');

const valueText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberText,
    stringText,
    fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(space, keyText, space, tie('value')), { maxLength: 4 })
      .map((entries) => `{${entries.map(([s, k, t, v]) => `${s}${k}${t}:${v}`).join(',')}}`),
  ),
})).value;

describe('findDuplicateKey', () => {
  it('finds what reading every character finds: the key, its object path and its offset', () => {
    fc.assert(
      fc.property(valueText, (text) => {
        JSON.parse(text); // valid JSON, as the scan requires
        expect(findDuplicateKey(text)).toEqual(referenceDuplicate(text));
      }),
      { numRuns: 3000 },
    );
  });

  it('names a path deeper than 8 objects by its ends and its depth, quoted', () => {
    expect(showKeyPath([])).toBe('""');
    expect(showKeyPath(['inputs', 'parameters'])).toBe('"inputs.parameters"');
    expect(showKeyPath(Array.from({ length: 12 }, (_, i) => `k${i}`))).toBe(
      '"k0.k1.k2.….k9.k10.k11" (12 objects deep)',
    );
    expect(showKeyPath(['a\nb'])).toBe('"a\\nb"');
  });

  it('makes parseJsonText refuse a file that repeats a key, naming where, in its code', () => {
    // h250: a predict input, a training config or a model's config.json took the last value.
    expect(() =>
      parseJsonText('{"epochs": 5,\n  "epochs": 50}', 'train.json', 'TRAINING_CONFIG_INVALID'),
    ).toThrow(
      expect.objectContaining({
        code: 'TRAINING_CONFIG_INVALID',
        message:
          'train.json: repeated key at line 2, column 3: the key "epochs" occurs twice in the top-level object; parsers differ on which one counts (RFC 8259 §4), so each key must occur once',
      }),
    );
    expect(parseJsonText('{"a": {"k": 1}, "b": {"k": 2}}', 'x.json', 'DATA_INVALID')).toEqual({
      a: { k: 1 },
      b: { k: 2 },
    });
  });
});
