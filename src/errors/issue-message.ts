import type { z } from 'zod';
import { didYouMean } from './closest-name.js';
import { quote } from './quote.js';

/**
 * What a validation issue says about itself (zod 4's issue fields, named structurally so that
 * this leaf imports no library at run time: zod's types only).
 */
export interface IssueFacts {
  code: string;
  input?: unknown;
  expected?: string | undefined;
  origin?: string | undefined;
  minimum?: number | bigint | undefined;
  maximum?: number | bigint | undefined;
  inclusive?: boolean | undefined;
  values?: readonly unknown[] | undefined;
  /** A length bound that is the only length allowed (`z.array(…).length(3)`). */
  exact?: boolean | undefined;
  /** invalid_format: the format (`regex`, `starts_with`, `email`, …) and what it asks for. */
  format?: string | undefined;
  pattern?: string | undefined;
  prefix?: string | undefined;
  suffix?: string | undefined;
  includes?: string | undefined;
  divisor?: number | bigint | undefined;
  /** unrecognized_keys: the keys a strict object does not know (its `schema` has those it does). */
  keys?: readonly string[] | undefined;
  /** invalid_union of a discriminated union: the discriminator and the values it takes. */
  discriminator?: string | undefined;
  options?: readonly unknown[] | undefined;
  /** invalid_union: the issues of each option, already worded (by this map too). */
  errors?:
    | readonly (readonly { code: string; path: readonly PropertyKey[]; message: string }[])[]
    | undefined;
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

/** Whether `value` is a number within `range` (an integer if it asks for one). */
export function inNumberRange(range: NumberRange, value: unknown): value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) return false;
  if (range.integer && !Number.isSafeInteger(value)) return false;
  const { min, max } = range;
  if (min !== undefined && (range.minInclusive === false ? value <= min : value < min))
    return false;
  if (max !== undefined && (range.maxInclusive === false ? value >= max : value > max))
    return false;
  return true;
}

/** `expected an integer from 0 to 65535, got "abc"`: one message for every way to miss a range. */
export function rangeMessage(range: NumberRange, input: unknown): string {
  return `expected ${describeRange(range)}, got ${describeInput(input)}`;
}

/**
 * A schema's own message for a check whose rule is worded better than its mechanism (a pattern):
 * `.regex(VERSION, { error: expecting('a positive integer') })` reads `expected a positive
 * integer, got "01"`, in the words of issueMessage.
 */
export const expecting =
  (what: string) =>
  (issue: { input?: unknown }): string =>
    `expected ${what}, got ${describeInput(issue.input)}`;

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
  tuple: 'an array',
  object: 'an object',
  record: 'an object',
  null: 'null',
};

/** What a length bound counts, by the issue's origin. */
const UNITS: Readonly<Record<string, string>> = {
  string: 'character',
  array: 'item',
  set: 'item',
  file: 'byte',
};

/** `1 row`, `2 rows`: a count with its unit, plural but for one. */
export const counted = (n: number | bigint, unit: string): string =>
  `${n} ${unit}${Number(n) === 1 ? '' : 's'}`;

/** The values a value may take, as a message lists them: `"a"`, `one of "a", "b"`. */
const oneOf = (values: readonly unknown[]): string =>
  `${values.length === 1 ? '' : 'one of '}${values.map((v) => JSON.stringify(v)).join(', ')}`;

/** The length of a string, an array or a set, as a message gives it; else the value itself. */
function lengthOf(input: unknown): string {
  if (typeof input === 'string' || Array.isArray(input)) return String(input.length);
  if (input instanceof Set) return String(input.size);
  return describeInput(input);
}

/** What a string format asks for: `a string matching /^a/`, `a string starting with "x"`. */
function describeFormat(issue: IssueFacts): string {
  switch (issue.format) {
    case 'regex':
      return `a string matching ${issue.pattern}`;
    case 'starts_with':
      return `a string starting with ${JSON.stringify(issue.prefix)}`;
    case 'ends_with':
      return `a string ending with ${JSON.stringify(issue.suffix)}`;
    case 'includes':
      return `a string containing ${JSON.stringify(issue.includes)}`;
    default:
      return `a valid ${issue.format ?? 'string'}`;
  }
}

/**
 * A union no option of which took the value: when every option refused it for its type or its
 * value at the top (`z.union([z.number(), z.string()])` given true), what each one expected,
 * from the option's own message (`expected a number or a string, got true`); else undefined.
 */
function unionMessage(issue: IssueFacts, got: string): string | undefined {
  const expected: string[] = [];
  for (const option of issue.errors ?? []) {
    const top = option.length === 1 && option[0]!.path.length === 0 ? option[0]! : undefined;
    const match = top && /^expected (.+), got /s.exec(top.message);
    if (!match) return undefined;
    if (!expected.includes(match[1]!)) expected.push(match[1]!);
  }
  return expected.length === 0 ? undefined : `expected ${expected.join(' or ')}, ${got}`;
}

/** A bound of a zod 4 number schema, as its checks hold it (`schema._zod.def.checks`). */
interface BoundCheck {
  _zod?: { def?: { check?: string; value?: unknown; inclusive?: boolean } };
}

/**
 * The whole range of the number schema that raised an issue, from its bound checks (the tightest
 * of each side, as zod checks each), so a miss on one side names both (`an integer from 2 to
 * 65536`) as the server configuration's hand-written ranges do; undefined bounds when the schema
 * has none (or is not a number schema).
 */
function rangeOf(schema: object | undefined, integer: boolean): NumberRange {
  const range: NumberRange = { integer };
  const checks = (schema as { _zod?: { def?: { checks?: readonly BoundCheck[] } } } | undefined)
    ?._zod?.def?.checks;
  for (const check of checks ?? []) {
    const def = check._zod?.def;
    if (def === undefined || typeof def.value !== 'number') continue;
    const inclusive = def.inclusive === true;
    if (def.check === 'greater_than') {
      if (
        range.min === undefined ||
        def.value > range.min ||
        (def.value === range.min && !inclusive)
      ) {
        range.min = def.value;
        range.minInclusive = inclusive;
      }
    } else if (def.check === 'less_than') {
      if (
        range.max === undefined ||
        def.value < range.max ||
        (def.value === range.max && !inclusive)
      ) {
        range.max = def.value;
        range.maxInclusive = inclusive;
      }
    }
  }
  return range;
}

/** Unknown keys of one issue given a "did you mean" (as many as an error document shows). */
const GUESSED_KEYS = 10;

/** The fields of the object schema that raised an unrecognized_keys issue (its `shape`). */
function fieldsOf(schema: object | undefined): string[] {
  const shape = (schema as { _zod?: { def?: { shape?: object } } } | undefined)?._zod?.def?.shape;
  return shape === undefined ? [] : Object.keys(shape);
}

/**
 * The messages of a zod error map (`schema.safeParse(value, { error: issueMessage })`), in the
 * style of normserve's own: `expected a number ≥ 0, got -1`, `expected an integer > 0, got -4`
 * (the schema takes integers only), `expected one of "batchnorm",
 * "layernorm", "none", got "groupnorm"`, `expected at most 128 characters, got 300`,
 * `unknown field "rate"`. Every parse whose issues reach a user passes it: the HTTP validation
 * (http/validation.ts), gRPC messages, config.json, the training and the server configuration.
 * The rules stay in the schema (the bounds are its checks'); undefined leaves zod's message, and
 * a message a schema writes itself wins over this map.
 */
export function issueMessage(issue: IssueFacts): string | undefined {
  const got = `got ${describeInput(issue.input)}`;
  // An integer field says so whichever way it is missed: its schema knows (zod's isInt).
  const integer =
    issue.schema !== undefined && 'isInt' in issue.schema && issue.schema.isInt === true;
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.expected === 'number' || issue.expected === 'int')
        return rangeMessage(rangeOf(issue.schema, integer), issue.input);
      const kind = issue.expected === undefined ? undefined : KINDS[issue.expected];
      return kind === undefined ? undefined : `expected ${kind}, ${got}`;
    }
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      if (bound === undefined) return undefined;
      const unit = issue.origin === undefined ? undefined : UNITS[issue.origin];
      if (unit !== undefined) {
        // Lengths: `expected at least 1 item, got 0`, `expected exactly 2 items, got 3`.
        const inclusive = issue.inclusive ?? true;
        const n = inclusive || issue.exact ? Number(bound) : Number(bound) + (small ? 1 : -1);
        const which = issue.exact ? 'exactly' : small ? 'at least' : 'at most';
        return `expected ${which} ${counted(n, unit)}, got ${lengthOf(issue.input)}`;
      }
      // origin 'int': an integer beyond the safe range (zod's int check): the field's own range
      // says what it takes, as for its other bound (one message, not zod's "Too big: expected int").
      if (issue.origin !== 'number' && issue.origin !== 'int') return undefined;
      // The issue's bound is the one missed; the schema's range names the other side too.
      const range = rangeOf(issue.schema, integer);
      if (small && range.min === undefined) {
        range.min = Number(bound);
        range.minInclusive = issue.inclusive;
      } else if (!small && range.max === undefined) {
        range.max = Number(bound);
        range.maxInclusive = issue.inclusive;
      }
      return rangeMessage(range, issue.input);
    }
    case 'invalid_value':
      return issue.values === undefined ? undefined : `expected ${oneOf(issue.values)}, ${got}`;
    case 'invalid_format':
      return `expected ${describeFormat(issue)}, ${got}`;
    case 'not_multiple_of':
      return issue.divisor === undefined
        ? undefined
        : `expected a multiple of ${issue.divisor}, ${got}`;
    case 'unrecognized_keys': {
      if (issue.keys === undefined || issue.keys.length === 0) return undefined;
      const known = fieldsOf(issue.schema);
      // A guess for the first few only: a body may hold a million unknown keys.
      const named = issue.keys.map((k, i) =>
        i < GUESSED_KEYS ? `${quote(k)}${didYouMean(k, known)}` : quote(k),
      );
      return `unknown field${issue.keys.length === 1 ? '' : 's'} ${named.join(', ')}`;
    }
    case 'invalid_union': {
      // A discriminated union names its discriminator's values; the issue's input is the object.
      if (issue.discriminator !== undefined && issue.options !== undefined) {
        const input = issue.input as Record<string, unknown> | undefined;
        return `expected ${oneOf(issue.options)}, got ${describeInput(input?.[issue.discriminator])}`;
      }
      return unionMessage(issue, got);
    }
    default:
      return undefined;
  }
}

/**
 * `schema.safeParse(value)` with its issues worded by issueMessage: what every parse whose issues
 * reach a user calls. The error map is passed only to a parse that failed (which is then run
 * again, on the slow path anyway): given to every parse, it cost each 1-row predict about 6 µs of
 * server CPU (84 against 90 µs, `npx tsx bench/ab-trees.ts BASE 9 3 "JSON 1"`, the route
 * parameters' parse; bench/README.md), though it only matters when there are issues.
 */
export function safeParseWorded<S extends z.ZodType>(
  schema: S,
  value: unknown,
  options: { jitless?: boolean } = {},
): z.ZodSafeParseResult<z.output<S>> {
  const quick = schema.safeParse(value, options);
  if (quick.success) return quick;
  const worded = schema.safeParse(value, { ...options, error: issueMessage });
  if (!worded.success) dropRepeatedIssues(worded.error.issues);
  return worded;
}

/**
 * Removes an issue that says what an earlier one says at the same path: `1e20` for an integer
 * field from 0 to 4294967295 misses both zod's safe-integer check and the maximum, which issueMessage
 * words alike. (zod's issues array is read-only as a property, not as an array.)
 */
function dropRepeatedIssues(issues: { path: readonly PropertyKey[]; message: string }[]): void {
  const seen = new Set<string>();
  for (let i = 0; i < issues.length; ) {
    const key = JSON.stringify([issues[i]!.path.map(String), issues[i]!.message]);
    if (seen.has(key)) issues.splice(i, 1);
    else {
      seen.add(key);
      i++;
    }
  }
}
