/**
 * JSON with two-space indentation where arrays of primitives and objects of primitives stay on
 * one line, so a config.json with 64-value input transforms and a list of layers reads like the
 * examples in docs/model-format.md. Parses to exactly what JSON.stringify would give.
 */
export function formatJson(value: unknown, indent = ''): string {
  const isPrimitive = (v: unknown) => v === null || typeof v !== 'object';
  if (isPrimitive(value)) return JSON.stringify(value) ?? 'null';
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every(isPrimitive))
      return `[${value.map((v) => JSON.stringify(v) ?? 'null').join(', ')}]`;
    return `[\n${value.map((v) => inner + formatJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(
    ([, v]) => v !== undefined,
  );
  if (entries.length === 0) return '{}';
  if (entries.every(([, v]) => isPrimitive(v))) {
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(', ')}}`;
  }
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner)}`).join(',\n')}\n${indent}}`;
}
