/** A key that occurs twice in one JSON object, and the keys leading to that object. */
export interface DuplicateKey {
  key: string;
  /** Keys of the enclosing objects, outermost first; `[]` for the top-level object. */
  path: string[];
}

interface Frame {
  isObject: boolean;
  keys: Set<string>;
  /** The enclosing object's frame and this object's key in it (for the path, built on a hit). */
  parent: Frame | undefined;
  key: string | undefined;
}

/** The keys leading to `frame`'s object, outermost first (arrays add none, as JSON paths here). */
function pathOf(frame: Frame): string[] {
  const path: string[] = [];
  for (let f: Frame | undefined = frame; f !== undefined; f = f.parent)
    if (f.key !== undefined) path.push(f.key);
  return path.reverse();
}

/**
 * Finds the first key repeated within one object of a JSON text (JSON.parse silently keeps the
 * last one). The text must already be known to be valid JSON: this scan does not validate it.
 * Linear in the text: each key is decoded once and looked up in its object's set, and a nested
 * object links to its parent instead of copying the path (a copy per object was quadratic in
 * the nesting depth); the path is built only for the duplicate found.
 */
export function findDuplicateKey(json: string): DuplicateKey | undefined {
  const stack: Frame[] = [];
  let expectKey = false;
  let lastKey = '';
  let i = 0;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (c === 0x22 /* " */) {
      const j = stringEnd(json, i);
      if (top?.isObject && expectKey) {
        // Escapes are rare in keys: decode only those that have one.
        const raw = json.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (top.keys.has(key)) return { key, path: pathOf(top) };
        top.keys.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      // An array's elements report their enclosing object's path: the array frame carries no key.
      const inObject = top?.isObject === true;
      stack.push({
        isObject: c === 0x7b,
        keys: new Set(),
        parent: top,
        key: inObject ? lastKey : undefined,
      });
      expectKey = c === 0x7b;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = top?.isObject === true;
    }
    i++;
  }
  return undefined;
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
