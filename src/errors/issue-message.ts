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
 * style of normserve's own: `expected a number ≥ 0, got -1`, `expected one of "batchnorm",
 * "layernorm", "none", got "groupnorm"`. The rules stay in the schema (the bounds are the issue's);
 * undefined leaves zod's message, and a message a schema writes itself wins over this map.
 */
export function issueMessage(issue: IssueFacts): string | undefined {
  const got = `got ${describeInput(issue.input)}`;
  switch (issue.code) {
    case 'invalid_type': {
      const kind = issue.expected === undefined ? undefined : KINDS[issue.expected];
      return kind === undefined ? undefined : `expected ${kind}, ${got}`;
    }
    case 'too_small':
    case 'too_big': {
      if (issue.origin !== 'number') return undefined;
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      const sign = small ? (issue.inclusive ? '≥' : '>') : issue.inclusive ? '≤' : '<';
      return `expected a number ${sign} ${String(bound)}, ${got}`;
    }
    case 'invalid_value':
      return issue.values === undefined
        ? undefined
        : `expected ${issue.values.length === 1 ? '' : 'one of '}${issue.values.map((v) => JSON.stringify(v)).join(', ')}, ${got}`;
    default:
      return undefined;
  }
}
