/**
 * Nesting levels that are indented; a container nested deeper is written on one line. Indenting
 * every level makes the text grow with the square of the depth (each line carries two spaces
 * per level above it): a 1,000-deep chain of small objects became 39 MB. With the bound the
 * text is at most about 2·MAX_INDENTED_LEVELS characters per value longer than compact JSON.
 */
export const MAX_INDENTED_LEVELS = 32;

const isPrimitive = (v: unknown) => v === null || typeof v !== 'object';
const primitive = (v: unknown) => JSON.stringify(v) ?? 'null';

/** A container being written: its members (key undefined in an array), the next one to write. */
interface Open {
  members: [key: string | undefined, value: unknown][];
  next: number;
  level: number;
  oneLine: boolean;
  close: string;
}

/**
 * JSON with two-space indentation where arrays of primitives and objects of primitives stay on
 * one line, so a config.json with 64-value input transforms and a list of layers reads like the
 * examples in docs/model-format.md. Parses to exactly what JSON.stringify would give.
 *
 * Written in one pass into a list of pieces joined once, without recursion: time and memory are
 * linear in the output, and any depth JSON.parse accepts is written (a recursive writer, like
 * JSON.stringify itself, overflows the stack some thousands of levels down). Containers below
 * MAX_INDENTED_LEVELS go on one line, so the output is also linear in the input.
 */
export function formatJson(value: unknown): string {
  const out: string[] = [];
  const open: Open[] = [];
  const indents: string[] = [''];
  const indent = (level: number) => {
    for (let l = indents.length; l <= level; l++) indents.push(`${indents[l - 1]}  `);
    return indents[level]!;
  };
  const write = (v: unknown, level: number, inLine: boolean) => {
    if (isPrimitive(v)) {
      out.push(primitive(v));
      return;
    }
    const array = Array.isArray(v);
    const members: Open['members'] = array
      ? v.map((item): [undefined, unknown] => [undefined, item])
      : Object.entries(v as Record<string, unknown>).filter(([, item]) => item !== undefined);
    const [start, close] = array ? ['[', ']'] : ['{', '}'];
    if (members.length === 0) {
      out.push(start + close);
    } else if (members.every(([, item]) => isPrimitive(item))) {
      const items = members.map(([key, item]) =>
        key === undefined ? primitive(item) : `${JSON.stringify(key)}: ${primitive(item)}`,
      );
      out.push(`${start}${items.join(', ')}${close}`);
    } else {
      out.push(start);
      open.push({
        members,
        next: 0,
        level,
        oneLine: inLine || level >= MAX_INDENTED_LEVELS,
        close,
      });
    }
  };
  write(value, 0, false);
  while (open.length > 0) {
    const top = open[open.length - 1]!;
    if (top.next === top.members.length) {
      out.push(top.oneLine ? top.close : `\n${indent(top.level)}${top.close}`);
      open.pop();
      continue;
    }
    const [key, item] = top.members[top.next]!;
    const separator = top.next === 0 ? '' : ',';
    top.next += 1;
    if (top.oneLine) out.push(separator === '' ? '' : ', ');
    else out.push(`${separator}\n${indent(top.level + 1)}`);
    if (key !== undefined) out.push(`${JSON.stringify(key)}: `);
    write(item, top.level + 1, top.oneLine);
  }
  return out.join('');
}
