/** The wording of number ranges, written once (src/errors/issue-message.ts). */

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeRange, issueMessage } from '../../src/errors/index.js';

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
