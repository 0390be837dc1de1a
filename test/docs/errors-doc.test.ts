/**
 * docs/errors.md against the one error catalogue (src/errors/catalogue.ts): its table has one row
 * per code, with the catalogue's status, title and problem type URI; and no code-like name in
 * backticks anywhere on the page is missing from the catalogue (a renamed or invented code), except
 * the server's environment variables, gRPC's status names and NOT_CODES.
 */
import { readFileSync } from 'node:fs';
import { status as grpcStatus } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { type ErrorCode, errorCatalogue } from '../../src/errors/index.js';
import { problemType } from '../../src/http/problem.js';
import { serverConfigSchema } from '../../src/service/index.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
const codes = Object.keys(errorCatalogue) as ErrorCode[];
/** Upper-case words the page may put in backticks that are not codes: HTTP methods, version states. */
const NOT_CODES = ['GET', 'POST', 'PUT', 'DELETE', 'CONNECT', 'AVAILABLE', 'FAILED'];

/** Rows of the catalogue table: `| \`CODE\` | status | title | \`type\` | when |`. */
function catalogueRows(): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of doc.split('\n')) {
    const match = /^\| `([A-Z][A-Z0-9_]*)` \|(.*)\|\s*$/.exec(line);
    if (!match) continue;
    const cells = match[2]!.split(' | ').map((c) => c.trim());
    expect(rows.has(match[1]!), `${match[1]} has two rows in docs/errors.md`).toBe(false);
    rows.set(match[1]!, cells);
  }
  return rows;
}

describe('docs/errors.md', () => {
  const rows = catalogueRows();

  it('has a row for every code of the catalogue', () => {
    const missing = codes.filter((code) => !rows.has(code));
    expect(missing, 'codes missing from the table of docs/errors.md').toEqual([]);
  });

  it('names no code that the catalogue does not have', () => {
    const unknownRows = [...rows.keys()].filter((code) => !Object.hasOwn(errorCatalogue, code));
    expect(unknownRows, 'table rows for codes that do not exist').toEqual([]);
    const allowed = new Set<string>([
      ...codes,
      ...Object.keys(serverConfigSchema.shape),
      // gRPC's status names (the page's bounds say what a gRPC call gets).
      ...Object.keys(grpcStatus).filter((name) => Number.isNaN(Number(name))),
      ...NOT_CODES,
    ]);
    const named = [...doc.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,})`/g)].map(
      (m) => m[1]!,
    );
    const unknown = [...new Set(named)].filter((name) => !allowed.has(name));
    expect(unknown, 'code-like names in docs/errors.md that are not catalogue codes').toEqual([]);
  });

  it('gives each code the catalogue status, title and problem type', () => {
    for (const code of codes) {
      const cells = rows.get(code);
      if (!cells) continue; // reported by the first test
      const { status, title } = errorCatalogue[code];
      expect(cells.slice(0, 3), code).toEqual([String(status), title, `\`${problemType(code)}\``]);
      expect(cells[3]?.length ?? 0, `${code}: the "when" column is empty`).toBeGreaterThan(0);
    }
  });
});
