import { quote } from './quote.js';

/** A key that occurs twice in one JSON object, and the keys leading to that object. */
export interface DuplicateKey {
  key: string;
  /** Keys of the enclosing objects, outermost first; `[]` for the top-level object. */
  path: string[];
  /** Where its second occurrence starts in the text (its opening quote), 0-based. */
  offset: number;
}

/** An open object of the scan: its keys so far, and where it sits. */
interface ObjectFrame {
  /** Made at its first key: an object of rows' values (`{"input": [...]}`) needs none until then. */
  keys: Set<string> | undefined;
  lastKey: string | undefined;
  /** The enclosing object's frame and this object's key in it (for the path, built on a hit). */
  parent: ObjectFrame | undefined;
  key: string | undefined;
}

/** The keys leading to `frame`'s object, outermost first (arrays add none, as JSON paths here). */
function pathOf(frame: ObjectFrame): string[] {
  const path: string[] = [];
  for (let f: ObjectFrame | undefined = frame; f !== undefined; f = f.parent)
    if (f.key !== undefined) path.push(f.key);
  return path.reverse();
}

/** The index of the next `character` in `json` from `from` on, json.length if there is none. */
const nextAt = (json: string, character: string, from: number): number => {
  const at = json.indexOf(character, from);
  return at < 0 ? json.length : at;
};

const isJsonSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Finds the first key repeated within one object of a JSON text (JSON.parse silently keeps the
 * last one; RapidJSON, which TF Serving and Triton parse with, finds the first). The text must
 * already be known to be valid JSON: this scan does not validate it.
 *
 * Only three characters matter: `"` (a string, a key when a `:` follows it), `{` and `}` (an
 * object opens or closes; arrays need no frame, a key belongs to the innermost open object). The
 * scan jumps from one to the next with indexOf, which V8 runs as a native search, so the numbers
 * of a body of rows cost next to nothing: 256 rows of 64 values (86 k characters) in 2.2 µs against
 * 408 µs for JSON.parse of the same text, 1 row in 0.4 µs (`npx tsx bench/json-duplicate-keys.ts`,
 * 2026-12-05, Intel VM); the loop over every character it replaced took ~670 µs for the 256 rows.
 * Linear in the text: each key is decoded once and looked up in its object's set, and
 * a nested object links to its parent instead of copying the path; the path is built only for the
 * duplicate found.
 */
export function findDuplicateKey(json: string): DuplicateKey | undefined {
  const length = json.length;
  let top: ObjectFrame | undefined;
  let quoteAt = nextAt(json, '"', 0);
  let openAt = nextAt(json, '{', 0);
  let closeAt = nextAt(json, '}', 0);
  for (;;) {
    if (quoteAt < openAt && quoteAt < closeAt) {
      const end = stringEnd(json, quoteAt);
      let after = end + 1;
      while (after < length && isJsonSpace(json.charCodeAt(after))) after++;
      if (top !== undefined && json.charCodeAt(after) === 0x3a /* : */) {
        // Escapes are rare in keys: decode only those that have one.
        const raw = json.slice(quoteAt + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        top.keys ??= new Set();
        if (top.keys.has(key)) return { key, path: pathOf(top), offset: quoteAt };
        top.keys.add(key);
        top.lastKey = key;
      }
      // Braces inside the string are none of the structure's.
      quoteAt = nextAt(json, '"', end + 1);
      if (openAt < end) openAt = nextAt(json, '{', end + 1);
      if (closeAt < end) closeAt = nextAt(json, '}', end + 1);
    } else if (openAt < closeAt) {
      top = { keys: undefined, lastKey: undefined, parent: top, key: top?.lastKey };
      openAt = nextAt(json, '{', openAt + 1);
    } else if (closeAt < length) {
      top = top?.parent;
      closeAt = nextAt(json, '}', closeAt + 1);
    } else return undefined;
  }
}

/**
 * The keys leading to a duplicate's object, for a message: `"a.b"`, or for a path deeper than 8
 * its first and last three keys and its depth (`"a.a.a.….a.a.a" (100000 objects deep)`), quoted
 * and cut as every echo of a client's or a file's text is (quote()).
 */
export function showKeyPath(path: readonly string[]): string {
  if (path.length <= 8) return quote(path.join('.'));
  return `${quote(`${path.slice(0, 3).join('.')}.….${path.slice(-3).join('.')}`)} (${path.length} objects deep)`;
}

/**
 * The index of the quote closing the JSON string that opens at `start` (json.length if none:
 * the scans here run on text JSON.parse may not have seen yet, so they never read past the end).
 */
export function stringEnd(json: string, start: number): number {
  let j = start + 1;
  while (j < json.length) {
    const c = json.charCodeAt(j);
    if (c === 0x22) return j;
    j += c === 0x5c /* \ */ ? 2 : 1;
  }
  return json.length;
}

/** Where an offset of a text is: 1-based line and column, 0-based character offset. */
export interface TextPosition {
  line: number;
  column: number;
  offset: number;
}

/** The line and column of `offset` in `text` (a JSON error's `position`). */
export function textPosition(text: string, offset: number): TextPosition {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1, offset };
}

/**
 * The first key repeated within one object of a valid JSON `text`, in words and place, or
 * undefined: `repeated key at line 2, column 2: the key "instances" occurs twice in the top-level
 * object; parsers differ on which one counts (RFC 8259 §4), so each key must occur once`.
 * JSON.parse keeps a repeated key's last value and RapidJSON (TF Serving's and Triton's parser) its
 * first, so a proxy, a log or another tool reading the same text could see something else than
 * normserve did: request bodies (http/json-body.ts) and the files read as JSON (parseJsonText) are
 * refused instead (h247, h250).
 */
export function repeatedKey(text: string): { detail: string; position: TextPosition } | undefined {
  const duplicate = findDuplicateKey(text);
  if (!duplicate) return undefined;
  const position = textPosition(text, duplicate.offset);
  const where =
    duplicate.path.length === 0
      ? 'the top-level object'
      : `the object at ${showKeyPath(duplicate.path)}`;
  return {
    detail: `repeated key at line ${position.line}, column ${position.column}: the key ${quote(duplicate.key)} occurs twice in ${where}; parsers differ on which one counts (RFC 8259 §4), so each key must occur once`,
    position,
  };
}
