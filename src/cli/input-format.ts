import { inFile, NormserveError } from '../errors/index.js';

/** The formats of the offline CLIs' input files. */
export type InputFormat = 'CSV' | 'JSON' | 'NDJSON' | 'float32';

/** The formats a name ending says, checked in order; any other file is read as CSV. */
const EXTENSIONS: readonly (readonly [RegExp, InputFormat])[] = [
  [/\.(ndjson|jsonl)$/i, 'NDJSON'],
  [/\.json$/i, 'JSON'],
  [/\.(f32|float32|bin|raw|npy)$/i, 'float32'],
];

/** What each format is, as a refusal lists the ones a program reads. */
const DESCRIPTIONS: Readonly<Record<InputFormat, string>> = {
  CSV: 'CSV (a header row)',
  JSON: 'JSON ([[...], ...] or {"instances": [[...], ...]}, .json)',
  NDJSON: 'NDJSON (one array per line, .ndjson or .jsonl)',
  float32: 'float32 rows',
};

/** An input file's format by its name: its extension, else CSV. */
export function formatOf(path: string): { format: InputFormat; extension?: string } {
  for (const [pattern, format] of EXTENSIONS) {
    const match = pattern.exec(path);
    if (match) return { format, extension: match[0] };
  }
  return { format: 'CSV' };
}

/**
 * JSON or NDJSON text given where CSV is read (a `rows.csv` that holds JSON): its first non-blank
 * line parses as a JSON array or object, which no CSV header does. Undefined for anything else.
 */
export function jsonContentOf(text: string): 'JSON' | 'NDJSON' | undefined {
  const first = /^\s*(\S[^\n]*)/.exec(text)?.[1]?.trim();
  if (first === undefined || !/^[[{]/.test(first)) return undefined;
  const isJson = (s: string) => {
    try {
      return typeof JSON.parse(s) === 'object';
    } catch {
      return false;
    }
  };
  if (isJson(text)) return 'JSON';
  return isJson(first) ? 'NDJSON' : undefined;
}

/**
 * Refuses, as one DATA_INVALID line, an input file whose format `program` does not read, saying
 * which it saw (by the extension, or by the content when `text` is given and it reads CSV) and
 * which it reads: a JSON file given to report was "not valid CSV: a quote inside the unquoted
 * cell", to recalibrate `header names column "0" twice`. `elsewhere` says what reads it instead.
 */
export function checkInputFormat(
  program: string,
  path: string,
  accepted: readonly InputFormat[],
  options: { text?: string; elsewhere?: Partial<Record<InputFormat, string>> } = {},
): InputFormat {
  const { format, extension } = formatOf(path);
  const content =
    format === 'CSV' && options.text !== undefined ? jsonContentOf(options.text) : undefined;
  const seen = content ?? format;
  if (accepted.includes(seen)) return seen;
  const how = content
    ? `by its ${content === 'JSON' ? 'content' : 'first line'}`
    : `by its extension ${extension}`;
  const elsewhere = options.elsewhere?.[seen];
  throw new NormserveError(
    'DATA_INVALID',
    inFile(
      path,
      `${seen} (${how}): ${program} reads ${accepted.map((f) => DESCRIPTIONS[f]).join(' or ')}${elsewhere ? `; ${elsewhere}` : ''}`,
    ),
  );
}
