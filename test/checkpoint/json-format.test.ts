/**
 * formatJson writes config.json and metrics.json: the layout of docs/model-format.md's examples,
 * in one pass. It used to format each level recursively and copy the text of every level into
 * its parent's, so a deeply nested value (a provenance chain of 1,000 generations) took seconds
 * on the event loop, the text grew with the square of the depth, and a deep enough value
 * overflowed the stack. Checked against a plain recursive reference of the same layout.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatJson, MAX_INDENTED_LEVELS } from '../../src/checkpoint/json-format.js';

const isPrimitive = (v: unknown) => v === null || typeof v !== 'object';
const primitive = (v: unknown) => JSON.stringify(v) ?? 'null';

/**
 * The layout, recursively: two-space indentation, containers of primitives on one line, and any
 * container nested MAX_INDENTED_LEVELS deep or more on one line with all it holds.
 */
function reference(value: unknown, level = 0, inLine = false): string {
  if (isPrimitive(value)) return primitive(value);
  const array = Array.isArray(value);
  const members: [string | undefined, unknown][] = array
    ? value.map((v) => [undefined, v])
    : Object.entries(value as object).filter(([, v]) => v !== undefined);
  const [open, close] = array ? ['[', ']'] : ['{', '}'];
  if (members.length === 0) return open + close;
  const oneLine =
    inLine || level >= MAX_INDENTED_LEVELS || members.every(([, v]) => isPrimitive(v));
  const text = members.map(
    ([k, v]) =>
      `${k === undefined ? '' : `${JSON.stringify(k)}: `}${reference(v, level + 1, oneLine)}`,
  );
  if (oneLine) return `${open}${text.join(', ')}${close}`;
  const inner = '  '.repeat(level + 1);
  return `${open}\n${text.map((t) => inner + t).join(',\n')}\n${'  '.repeat(level)}${close}`;
}

/** A provenance chain as recalibrations nested it before it was bounded: `depth` links. */
function chain(depth: number): unknown {
  let link: unknown = null;
  for (let v = 1; v <= depth; v++) {
    link = { kind: 'recalibration', parent_version: v, mode: 'exact', note: null, previous: link };
  }
  return { format: 'normserve-config/1', provenance: link };
}

describe('formatJson', () => {
  it('writes the bundled config.json and metrics.json files byte for byte', () => {
    for (const file of [
      'models/digits/1/config.json',
      'models/digits/1/metrics.json',
      'models/digits-cnn/1/config.json',
    ]) {
      const text = readFileSync(file, 'utf8');
      expect(`${formatJson(JSON.parse(text))}\n`, file).toBe(text);
    }
  });

  it('matches the reference for nesting deeper than the indented levels', () => {
    for (const depth of [1, MAX_INDENTED_LEVELS - 1, MAX_INDENTED_LEVELS, 200]) {
      const value = chain(depth);
      const text = formatJson(value);
      expect(text).toBe(reference(value));
      expect(JSON.parse(text)).toEqual(value);
    }
    // Indentation stops growing at MAX_INDENTED_LEVELS.
    const longest = Math.max(
      ...formatJson(chain(200))
        .split('\n')
        .map((l) => l.search(/\S/)),
    );
    expect(longest).toBe(2 * MAX_INDENTED_LEVELS);
  });

  it('matches the reference for a wide object and mixed arrays', () => {
    const wide: Record<string, unknown> = {};
    for (let i = 0; i < 5_000; i++) {
      wide[`k${i}`] = i % 3 === 0 ? { a: i, b: [i, 'x', null], c: { d: [] } } : [i, { e: i }];
    }
    const value = {
      wide,
      empty: {},
      list: [[], {}, [1, [2, [3]]], 's', undefined],
      numbers: [1.5, -2e-7, 1e21, null, true, undefined, Number.NaN],
      strings: ['a,b', 1, '"c", d'],
      skipped: undefined,
    };
    const text = formatJson(value);
    expect(text).toBe(reference(value));
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(value)));
  });

  it('writes a value nested 2,000 and 100,000 deep (deeper than JSON.stringify can)', () => {
    const deep = chain(2000);
    expect(JSON.parse(formatJson(deep))).toEqual(deep);
    const depth = 100_000;
    const compact = `${'{"a":['.repeat(depth)}1${']}'.repeat(depth)}`;
    const value = JSON.parse(compact);
    const text = formatJson(value);
    // Linear in the input: the indented levels add at most 2·MAX_INDENTED_LEVELS per line.
    expect(text.length).toBeLessThan(2 * compact.length);
    expect(formatJson(JSON.parse(text))).toBe(text);
    expect(text.startsWith(`{\n  "a": [\n    {\n      "a": [`)).toBe(true);
    expect(text.endsWith(`}\n  ]\n}`)).toBe(true);
  });
});
