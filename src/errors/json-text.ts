import type { ErrorCode } from './catalogue.js';
import { NormserveError } from './normserve-error.js';
import { printable } from './quote.js';

/**
 * `text` parsed as JSON, or `code` thrown as `<where>: not valid JSON (<V8's reason>)`, the reason
 * made printable (V8 quotes the text around the error: raw bytes, for a binary file). The words of
 * every file normserve reads as JSON before its schema checks it: a training config, a predict
 * input, a model's active-version record.
 */
export function parseJsonText(text: string, where: string, code: ErrorCode): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new NormserveError(code, `${where}: not valid JSON (${printable((e as Error).message)})`);
  }
}
