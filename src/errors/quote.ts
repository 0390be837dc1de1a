/** Characters of a client's string quoted back in a message; the rest is cut, marked "…". */
export const ECHO_CHARS = 64;

/**
 * What a terminal line or a log line cannot show as itself: control characters (C0, DEL, C1),
 * format characters (bidirectional overrides, zero-width characters), surrogates, private-use and
 * unassigned code points, and every separator but the plain space (line and paragraph separators,
 * no-break and other spaces, which look like a space and are not one).
 */
const UNPRINTABLE = /[\p{C}\p{Z}]/u;

/** One character (code point) as it is written in a message: JSON's escapes, `\uXXXX` else. */
function escapeChar(ch: string): string {
  const json = JSON.stringify(ch).slice(1, -1);
  if (json !== ch || ch === ' ' || !UNPRINTABLE.test(ch)) return json;
  let out = '';
  for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/**
 * `text` with every character a terminal cannot show as itself escaped (`\u0003`, `\n`,
 * `\u202e`), for text a library quotes from its input (a parser's message): a message stays one
 * printable line.
 */
export function printable(text: string): string {
  let out = '';
  for (const ch of text) out += printableChar(ch);
  return out;
}

/** One character as printable() writes it: quotes and backslashes as themselves. */
function printableChar(ch: string): string {
  return ch === '"' || ch === '\\' ? ch : escapeChar(ch);
}

/**
 * A JSON value a file held (a tensor's shape or data_offsets) written as JSON, printable, cut to
 * ECHO_CHARS characters (marked "…"): `[-1]` reads as itself, and a shape of 10,000 sizes or a
 * string of a megabyte stays one short line, as quote() keeps a string.
 */
export function echoJson(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  let out = '';
  for (const ch of text) {
    const shown = printableChar(ch);
    if (out.length + shown.length > ECHO_CHARS) return `${out}…`;
    out += shown;
  }
  return out;
}

/**
 * `value` quoted for a message as a JSON string, its unprintable characters escaped, cut to
 * ECHO_CHARS characters of quoted text (marked "…"): a message (and the problem that carries it
 * as `detail`, `error` and an `errors` entry) stays one short printable line whatever a client
 * sent or a file held — binary data included.
 */
export function quote(value: string): string {
  let out = '';
  for (const ch of value) {
    const escaped = escapeChar(ch);
    if (out.length + escaped.length > ECHO_CHARS) return `"${out}…"`;
    out += escaped;
  }
  return `"${out}"`;
}

/**
 * Values quoted and listed, as many as fit in `maxChars` (one at least): `"a", "b", … and 7
 * more` — a file's column names or labels, however many and however long, stay a short list.
 * With `keepLast`, a cut list still ends with the last value (`"p0", "p1", … 62 more …,
 * "label"`): a CSV's label column is most often its last, where a cut list hid it.
 */
export function quoteList(
  values: readonly string[],
  maxChars = 2 * ECHO_CHARS,
  keepLast = false,
): string {
  const tail = keepLast && values.length > 1 ? quote(values[values.length - 1]!) : '';
  let out = '';
  for (let i = 0; i < values.length; i++) {
    const next = `${i === 0 ? '' : ', '}${quote(values[i]!)}`;
    if (i > 0 && out.length + next.length > maxChars) {
      const rest = values.length - i;
      if (tail === '') return `${out}, … and ${rest} more`;
      return rest === 1 ? `${out}, ${tail}` : `${out}, … ${rest - 1} more …, ${tail}`;
    }
    out += next;
  }
  return out;
}
