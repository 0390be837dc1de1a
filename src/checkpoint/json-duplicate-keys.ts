import { quote } from '../errors/index.js';

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

/** What a safetensors header holds, counted on its text: its metadata and its tensor entries. */
export interface HeaderExtent {
  /** Entries of the top-level `__metadata__` object. */
  metadataEntries: number;
  /** Characters from its `{` to its `}` (to the end of the text if unclosed). */
  metadataLength: number;
  /** Keys of the top-level object other than `__metadata__`: the tensor entries. */
  tensorEntries: number;
}

/**
 * Measures a safetensors header's text without parsing it: one linear pass that stops as soon
 * as `limits.metadataEntries` or `limits.tensorEntries` is exceeded, so a header of millions of
 * keys is refused before JSON.parse builds them. Safe on text that is not valid JSON (JSON.parse
 * judges that afterwards); several `__metadata__` keys (refused later as duplicates) are summed.
 */
export function headerExtent(
  json: string,
  limits: { metadataEntries: number; tensorEntries: number },
): HeaderExtent {
  let depth = 0;
  let expectKey = false;
  let afterMetadataKey = false;
  let metadataStart = -1;
  const extent: HeaderExtent = { metadataEntries: 0, metadataLength: 0, tensorEntries: 0 };
  let i = 0;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const j = stringEnd(json, i);
      if (expectKey && depth === 1) {
        const raw = json.slice(i + 1, j);
        // A key spelled with escapes (\u005f_metadata__) is the same key to JSON.parse.
        afterMetadataKey =
          raw === '__metadata__' ||
          (raw.length <= 6 * 12 && raw.includes('\\') && decodes(json.slice(i, j + 1)));
        if (!afterMetadataKey && ++extent.tensorEntries > limits.tensorEntries) return extent;
      } else if (expectKey && metadataStart >= 0 && depth === 2) {
        if (++extent.metadataEntries > limits.metadataEntries) return extent;
      }
      expectKey = false;
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth += 1;
      if (depth === 2 && afterMetadataKey && c === 0x7b) metadataStart = i;
      expectKey = c === 0x7b;
      afterMetadataKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (depth === 2 && metadataStart >= 0) {
        extent.metadataLength += i + 1 - metadataStart;
        metadataStart = -1;
      }
      depth -= 1;
    } else if (c === 0x2c /* , */) {
      expectKey = true;
      afterMetadataKey = false;
    }
    i++;
  }
  if (metadataStart >= 0) extent.metadataLength += json.length - metadataStart;
  return extent;
}

function decodes(quoted: string): boolean {
  try {
    return JSON.parse(quoted) === '__metadata__';
  } catch {
    return false;
  }
}
