/** The wording of number ranges, written once (src/errors/issue-message.ts). */

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  describeRange,
  expecting,
  inNumberRange,
  issueMessage,
  safeParseWorded,
} from '../../src/errors/index.js';

const message = (schema: z.ZodType, value: unknown) =>
  schema.safeParse(value, { error: issueMessage }).error?.issues[0]?.message;

describe('issueMessage', () => {
  it('words a bound of an integer field as an integer, of a number field as a number', () => {
    expect(message(z.number().int().positive(), -4)).toBe('expected an integer > 0, got -4');
    expect(message(z.number().int().max(10), 11)).toBe('expected an integer ≤ 10, got 11');
    expect(message(z.number().int(), 2.5)).toBe('expected an integer, got 2.5');
    expect(message(z.number().int(), 'x')).toBe('expected an integer, got "x"');
    expect(message(z.number().min(0), -1)).toBe('expected a number ≥ 0, got -1');
    expect(message(z.number().lt(1), 1)).toBe('expected a number < 1, got 1');
  });
});

describe('issueMessage words every kind of issue a request or a config meets', () => {
  it('names both bounds of a number field, whichever it missed', () => {
    const batchSize = z.number().int().min(2).max(65536);
    expect(message(batchSize, 1)).toBe('expected an integer from 2 to 65536, got 1');
    expect(message(batchSize, 70000)).toBe('expected an integer from 2 to 65536, got 70000');
    expect(message(batchSize, 'x')).toBe('expected an integer from 2 to 65536, got "x"');
    expect(message(z.coerce.number().min(0).max(1e12), 'abc')).toBe(
      'expected a number from 0 to 1000000000000, got NaN',
    );
    expect(message(z.number().gt(0).max(1), 0)).toBe('expected a number above 0, at most 1, got 0');
  });

  it('values of a set, lengths, formats, unknown fields, unions', () => {
    expect(message(z.enum(['exact', 'prior']), 'fast')).toBe(
      'expected one of "exact", "prior", got "fast"',
    );
    expect(message(z.literal('normserve.model/v1'), 'v2')).toBe(
      'expected "normserve.model/v1", got "v2"',
    );
    expect(message(z.string().max(3), 'abcdef')).toBe('expected at most 3 characters, got 6');
    expect(message(z.array(z.number()).min(1), [])).toBe('expected at least 1 item, got 0');
    expect(message(z.array(z.number()).length(2), [1, 2, 3])).toBe(
      'expected exactly 2 items, got 3',
    );
    expect(message(z.tuple([z.number()]), [1, 2])).toBe('expected at most 1 item, got 2');
    expect(message(z.string().regex(/^[a-z]+$/), 'A!')).toBe(
      'expected a string matching /^[a-z]+$/, got "A!"',
    );
    expect(message(z.number().multipleOf(2), 3)).toBe('expected a multiple of 2, got 3');
    expect(message(z.strictObject({ a: z.number() }), { a: 1, rate: 2 })).toBe(
      'unknown field "rate"',
    );
    expect(message(z.strictObject({}), { b: 1, c: 2 })).toBe('unknown fields "b", "c"');
    // A near miss of one field is named with it (closestName); of two, with neither.
    expect(
      message(z.strictObject({ threads: z.number().optional(), engine: z.string().optional() }), {
        thread: 1,
        engin: 'js',
        zzzz: 0,
      }),
    ).toBe(
      'unknown fields "thread" (did you mean "threads"?), "engin" (did you mean "engine"?), "zzzz"',
    );
    expect(
      message(z.strictObject({ rate_a: z.number().optional(), rate_b: z.number().optional() }), {
        rate_c: 1,
      }),
    ).toBe('unknown field "rate_c"');
    expect(message(z.object({ a: z.string() }), {})).toBe('expected a string, got nothing');
    expect(message(z.string(), null)).toBe('expected a string, got null');
    expect(message(z.object({}), [])).toBe('expected an object, got an array');
    expect(message(z.union([z.number(), z.string()]), true)).toBe(
      'expected a number or a string, got true',
    );
    const kind = z.discriminatedUnion('type', [
      z.object({ type: z.literal('adamw') }),
      z.object({ type: z.literal('sgd') }),
    ]);
    expect(message(kind, { type: 'lion' })).toBe('expected one of "adamw", "sgd", got "lion"');
  });

  it('a message the schema writes wins; expecting() words one in the same style', () => {
    expect(message(z.number().min(1, 'at least one, please'), 0)).toBe('at least one, please');
    expect(
      message(z.string().regex(/^[1-9][0-9]*$/, { error: expecting('a positive integer') }), '01'),
    ).toBe('expected a positive integer, got "01"');
  });
});

describe('safeParseWorded', () => {
  // `seed: 1e20` in a training config read `Too big: expected int to be <=9007199254740991;
  // expected an integer from 0 to 4294967295, got 100000000000000000000`.
  it('words an integer beyond the safe range by the field’s range, once', () => {
    const seed = z.object({ seed: z.number().int().min(0).max(0xffffffff) });
    const issues = safeParseWorded(seed, { seed: 1e20 }).error?.issues;
    expect(issues?.map((i) => [i.path, i.message])).toEqual([
      [['seed'], 'expected an integer from 0 to 4294967295, got 100000000000000000000'],
    ]);
    const unbounded = safeParseWorded(z.number().int().min(1), 1e20).error?.issues;
    expect(unbounded?.map((i) => i.message)).toEqual([
      'expected an integer from 1 to 9007199254740991, got 100000000000000000000',
    ]);
  });
});

describe('inNumberRange', () => {
  it('holds a value to the range describeRange words', () => {
    const batch = { integer: true, min: 2, max: 65536 };
    expect([1, 2, 65536, 65537, 2.5, Number.NaN].map((v) => inNumberRange(batch, v))).toEqual([
      false,
      true,
      true,
      false,
      false,
      false,
    ]);
    const open = { integer: false, min: 0, minInclusive: false, max: 1, maxInclusive: false };
    expect([0, 0.5, 1, '0.5'].map((v) => inNumberRange(open, v))).toEqual([
      false,
      true,
      false,
      false,
    ]);
  });
});

describe('describeRange', () => {
  it('words both bounds, one, or none', () => {
    expect(describeRange({ integer: true, min: 0, max: 65535 })).toBe('an integer from 0 to 65535');
    expect(describeRange({ integer: false, min: 0, minInclusive: false, max: 100 })).toBe(
      'a number above 0, at most 100',
    );
    expect(describeRange({ integer: true, min: 1 })).toBe('an integer ≥ 1');
    expect(describeRange({ integer: false })).toBe('a number');
  });
});
