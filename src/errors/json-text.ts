import type { ErrorCode } from './catalogue.js';
import { repeatedKey } from './json-duplicate-keys.js';
import { NormserveError } from './normserve-error.js';
import { printable } from './quote.js';

/**
 * `text` parsed as JSON, or `code` thrown as `<where>: not valid JSON (<V8's reason>)`, the reason
 * made printable (V8 quotes the text around the error: raw bytes, for a binary file), or as
 * `<where>: repeated key at line …` for a key written twice in one object (repeatedKey). The
 * words of every file normserve reads as JSON before its schema checks it: a training config, a
 * predict input, a model's config.json and active-version record. Not used for the files read as
 * "this, or nothing" with no error to give — a job record, a lock file's owner, a version's
 * metrics.json (JSON.parse then a schema's safeParse: a broken one is read as absent, its
 * reader's documented rule) — where a repeated key has no one to be told to.
 */
export function parseJsonText(text: string, where: string, code: ErrorCode): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new NormserveError(code, `${where}: not valid JSON (${printable((e as Error).message)})`);
  }
  const repeated = repeatedKey(text);
  if (repeated) throw new NormserveError(code, `${where}: ${repeated.detail}`);
  return value;
}
