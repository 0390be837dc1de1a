/** A key that occurs twice in one JSON object, and the keys leading to that object. */
export interface DuplicateKey {
  key: string;
  /** Keys of the enclosing objects, outermost first; `[]` for the top-level object. */
  path: string[];
}

interface Frame {
  isObject: boolean;
  keys: Set<string>;
  path: string[];
}

/**
 * Finds the first key repeated within one object of a JSON text (JSON.parse silently keeps the
 * last one). The text must already be known to be valid JSON: this scan does not validate it.
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
      let j = i + 1;
      while (json.charCodeAt(j) !== 0x22) j += json.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      if (top?.isObject && expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, path: top.path };
        top.keys.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const path = top === undefined ? [] : top.isObject ? [...top.path, lastKey] : top.path;
      stack.push({ isObject: c === 0x7b, keys: new Set(), path });
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
