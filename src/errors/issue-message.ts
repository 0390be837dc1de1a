import { quote } from './quote.js';

/**
 * What a validation issue says about itself (zod 4's issue fields, named structurally so that
 * this leaf imports no library).
 */
export interface IssueFacts {
  code: string;
  input?: unknown;
  expected?: string;
  origin?: string;
  minimum?: number | bigint;
  maximum?: number | bigint;
  inclusive?: boolean;
  values?: readonly unknown[];
  /**
   * The schema that raised the issue (zod 4 gives it): a number schema's `isInt` says whether it
   * takes integers only.
   */
  schema?: object | undefined;
}

/**
 * The values a number accepts: integers only or any number, and its bounds (inclusive unless
 * said otherwise). Written once here for the training config's zod issues (issueMessage) and the
 * server config's ranges (service/server-config.ts).
 */
export interface NumberRange {
  integer: boolean;
  min?: number | undefined;
  minInclusive?: boolean | undefined;
  max?: number | undefined;
  maxInclusive?: boolean | undefined;
}

/** `an integer from 0 to 65535`, `an integer ≥ 1`, `a number > 0`, `a number above 0, at most 100`. */
export function describeRange(range: NumberRange): string {
  const kind = range.integer ? 'an integer' : 'a number';
  const minInclusive = range.minInclusive ?? true;
  const maxInclusive = range.maxInclusive ?? true;
  const { min, max } = range;
  if (min !== undefined && max !== undefined) {
    return minInclusive && maxInclusive
      ? `${kind} from ${min} to ${max}`
      : `${kind} ${minInclusive ? 'at least' : 'above'} ${min}, ${maxInclusive ? 'at most' : 'below'} ${max}`;
  }
  if (min !== undefined) return `${kind} ${minInclusive ? '≥' : '>'} ${min}`;
  if (max !== undefined) return `${kind} ${maxInclusive ? '≤' : '<'} ${max}`;
  return kind;
}

/** `expected an integer from 0 to 65535, got "abc"`: one message for every way to miss a range. */
export function rangeMessage(range: NumberRange, input: unknown): string {
  return `expected ${describeRange(range)}, got ${describeInput(input)}`;
}

/** A value a client or an operator gave, as a message shows it: `"abc"`, `-1`, `an array`. */
export function describeInput(input: unknown): string {
  if (typeof input === 'string') return quote(input);
  if (input === undefined) return 'nothing';
  if (Array.isArray(input)) return 'an array';
  if (typeof input === 'object' && input !== null) return 'an object';
  return String(input);
}

const KINDS: Readonly<Record<string, string>> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
};

/**
 * The messages of a zod error map (`schema.safeParse(value, { error: issueMessage })`), in the
 * style of normserve's own: `expected a number ≥ 0, got -1`, `expected an integer > 0, got -4`
 * (the schema takes integers only), `expected one of "batchnorm",
 * "layernorm", "none", got "groupnorm"`. The rules stay in the schema (the bounds are the issue's);
 * undefined leaves zod's message, and a message a schema writes itself wins over this map.
 */
export function issueMessage(issue: IssueFacts): string | undefined {
  const got = `got ${describeInput(issue.input)}`;
  // An integer field says so whichever way it is missed: its schema knows (zod's isInt).
  const integer =
    issue.schema !== undefined && 'isInt' in issue.schema && issue.schema.isInt === true;
  switch (issue.code) {
    case 'invalid_type': {
      if (integer && (issue.expected === 'number' || issue.expected === 'int'))
        return rangeMessage({ integer }, issue.input);
      const kind = issue.expected === undefined ? undefined : KINDS[issue.expected];
      return kind === undefined ? undefined : `expected ${kind}, ${got}`;
    }
    case 'too_small':
    case 'too_big': {
      if (issue.origin !== 'number') return undefined;
      const bound = Number(issue.code === 'too_small' ? issue.minimum : issue.maximum);
      const range: NumberRange =
        issue.code === 'too_small'
          ? { integer, min: bound, minInclusive: issue.inclusive }
          : { integer, max: bound, maxInclusive: issue.inclusive };
      return rangeMessage(range, issue.input);
    }
    case 'invalid_value':
      return issue.values === undefined
        ? undefined
        : `expected ${issue.values.length === 1 ? '' : 'one of '}${issue.values.map((v) => JSON.stringify(v)).join(', ')}, ${got}`;
    default:
      return undefined;
  }
}
