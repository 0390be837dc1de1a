import type { ErrorLocation } from './normserve-error.js';
import { ECHO_CHARS, quote } from './quote.js';

/** A key written as itself in a path: an identifier, short enough to be echoed whole. */
const BARE_KEY = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * `['instances', 3, 17]` → `instances[3][17]`; `['layers', 2, 'type']` → `layers[2].type`. A key
 * that is no short identifier (a client's unknown field holding a NUL and a quote, `x-y`, `a.b`,
 * a 1 MB name) is quoted as JavaScript writes it, `["foo\u0000\"bar"]`: escaped and cut by
 * quote(), so a path stays one short printable line, never ambiguous, whatever keys a client sent.
 */
export function formatPath(path: readonly PropertyKey[], root = ''): string {
  let out = root;
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else {
      const text = String(key);
      if (!BARE_KEY.test(text) || text.length > ECHO_CHARS) out += `[${quote(text)}]`;
      else out += out === '' ? text : `.${text}`;
    }
  }
  return out === '' ? '(root)' : out;
}

/**
 * Validation issues (zod's or any library's with the same shape) as error locations; kept free of
 * any library import so that every layer can use it.
 */
export function issuesToLocations(
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
  root = '',
): ErrorLocation[] {
  return issues.map((issue) => ({ path: formatPath(issue.path, root), message: issue.message }));
}

/**
 * One line naming the first `max` issues: `layers[2].type: Invalid input; name: Required`;
 * `total` counts issues beyond the given locations too.
 */
export function describeLocations(
  locations: readonly ErrorLocation[],
  max = 5,
  total = locations.length,
): string {
  const shown = locations.slice(0, max).map((l) => `${l.path}: ${l.message}`);
  if (total > shown.length) shown.push(`… and ${total - shown.length} more`);
  return shown.join('; ');
}

/**
 * Where in an input file a message points, in the one form every reader uses: `data.csv: line 7`,
 * or `data.csv: line 7, column "b"` (the column's name quoted, as a file may hold anything).
 * `line` is the file's own 1-based line number, blank lines counted. A request body has no file
 * name (`file` ''): `line 7, column "b"`, as the NDJSON upload's `line 7`.
 */
export function fileLine(file: string, line: number, column?: string): string {
  return inFile(file, `line ${line}${column === undefined ? '' : `, column ${quote(column)}`}`);
}

/** A message about a whole input file: `data.csv: what`; `what` alone for a request body (''). */
export const inFile = (file: string, what: string): string =>
  file === '' ? what : `${file}: ${what}`;
