/**
 * Nesting levels that are indented; a container nested deeper is written on one line. Indenting
 * every level makes the text grow with the square of the depth (each line carries two spaces
 * per level above it): a 1,000-deep chain of small objects became 39 MB. With the bound the
 * text is at most about 2·MAX_INDENTED_LEVELS characters per value longer than compact JSON.
 */
export const MAX_INDENTED_LEVELS = 32;

const isPrimitive = (v: unknown) => v === null || typeof v !== 'object';
const primitive = (v: unknown) => JSON.stringify(v) ?? 'null';

/** A container being written: its keys (undefined for an array), the next member to write. */
interface Open {
  container: unknown[] | Record<string, unknown>;
  keys: string[] | undefined;
  length: number;
  next: number;
  written: number;
  level: number;
  oneLine: boolean;
  close: string;
}

/** One line of primitives: `[1, 2]`, `{"a": 1}` (members whose value is undefined left out). */
function primitivesLine(
  v: unknown[] | Record<string, unknown>,
  keys: string[] | undefined,
): string {
  if (keys === undefined) {
    const items = v as unknown[];
    // Without strings no comma can be inside an item: the native writer, spaced.
    if (items.every((item) => typeof item !== 'string'))
      return (JSON.stringify(items) as string).replaceAll(',', ', ');
    return `[${items.map(primitive).join(', ')}]`;
  }
  const object = v as Record<string, unknown>;
  const members: string[] = [];
  for (const key of keys) {
    const item = object[key];
    if (item !== undefined) members.push(`${JSON.stringify(key)}: ${primitive(item)}`);
  }
  return `{${members.join(', ')}}`;
}

/**
 * JSON with two-space indentation where arrays of primitives and objects of primitives stay on
 * one line, so a config.json with 64-value input transforms and a list of layers reads like the
 * examples in docs/model-format.md. Parses to exactly what JSON.stringify would give.
 *
 * Written in one pass, appending to one string (V8 joins the pieces once, when the text is
 * read), without recursion: time and memory are linear in the output, and any depth JSON.parse
 * accepts is written (a recursive writer, like JSON.stringify itself, overflows the stack some
 * thousands of levels down). Containers below MAX_INDENTED_LEVELS go on one line, so the output
 * is also linear in the input.
 */
export function formatJson(value: unknown): string {
  let out = '';
  const open: Open[] = [];
  const indents: string[] = [''];
  const indent = (level: number) => {
    for (let l = indents.length; l <= level; l++) indents.push(`${indents[l - 1]}  `);
    return indents[level]!;
  };
  const write = (v: unknown, level: number, inLine: boolean) => {
    if (isPrimitive(v)) {
      out += primitive(v);
      return;
    }
    const container = v as unknown[] | Record<string, unknown>;
    const keys = Array.isArray(container) ? undefined : Object.keys(container);
    const values =
      keys === undefined
        ? (container as unknown[])
        : keys.map((k) => (container as Record<string, unknown>)[k]);
    if (values.every(isPrimitive)) {
      out += primitivesLine(container, keys);
      return;
    }
    out += keys === undefined ? '[' : '{';
    open.push({
      container,
      keys,
      length: values.length,
      next: 0,
      written: 0,
      level,
      oneLine: inLine || level >= MAX_INDENTED_LEVELS,
      close: keys === undefined ? ']' : '}',
    });
  };
  write(value, 0, false);
  while (open.length > 0) {
    const top = open[open.length - 1]!;
    if (top.next === top.length) {
      if (!top.oneLine && top.written > 0) out += `\n${indent(top.level)}`;
      out += top.close;
      open.pop();
      continue;
    }
    const key = top.keys?.[top.next];
    const item =
      key === undefined
        ? (top.container as unknown[])[top.next]
        : (top.container as Record<string, unknown>)[key];
    top.next += 1;
    if (key !== undefined && item === undefined) continue;
    if (top.oneLine) out += top.written === 0 ? '' : ', ';
    else out += `${top.written === 0 ? '' : ','}\n${indent(top.level + 1)}`;
    top.written += 1;
    if (key !== undefined) out += `${JSON.stringify(key)}: `;
    write(item, top.level + 1, top.oneLine);
  }
  return out;
}
