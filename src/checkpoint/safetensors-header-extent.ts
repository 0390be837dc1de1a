import { stringEnd } from '../errors/index.js';

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
