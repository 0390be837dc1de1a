/**
 * An input file in a format the CLI does not read is refused in one line saying which format it
 * saw (by the extension, or by the content of a file read as CSV) and which the CLI reads: a JSON
 * file given to report was "line 1: not valid CSV: a quote inside the unquoted cell", NDJSON given
 * to predict `header names column "0" twice`. (recalibrate: test/admin/recalibrate-cli.test.ts.)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { runEntry } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const dir = makeTempDir('input-formats');
const DIGITS = bundledVersionDir('digits');
const row = Array.from({ length: 64 }, (_, i) => i % 16);
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const CSV = 'CSV \\(a header row\\)';

for (const { what, entry, args, expected } of [
  {
    what: 'report given a .json file',
    entry: 'src/cli/report.ts' as const,
    args: () => ['--data', file('rows.json', JSON.stringify([row, row]))],
    expected: new RegExp(
      `^report: \\S+/rows\\.json: JSON \\(by its extension \\.json\\): report reads ${CSV}$`,
    ),
  },
  {
    what: 'report given JSON in a .csv file',
    entry: 'src/cli/report.ts' as const,
    args: () => ['--data', file('rows.csv', JSON.stringify({ instances: [row, row] }))],
    expected: new RegExp(
      `^report: \\S+/rows\\.csv: JSON \\(by its content\\): report reads ${CSV}$`,
    ),
  },
  {
    what: 'report given NDJSON in a .csv file',
    entry: 'src/cli/report.ts' as const,
    args: () => ['--data', file('lines.csv', `${JSON.stringify(row)}\n${JSON.stringify(row)}\n`)],
    expected: new RegExp(
      `^report: \\S+/lines\\.csv: NDJSON \\(by its first line\\): report reads ${CSV}$`,
    ),
  },
  {
    what: 'predict given an .ndjson file',
    entry: 'src/cli/predict.ts' as const,
    args: () => ['--input', file('rows.ndjson', `${JSON.stringify(row)}\n`)],
    expected: new RegExp(
      `^predict: \\S+/rows\\.ndjson: NDJSON \\(by its extension \\.ndjson\\): predict reads ${CSV} or JSON \\(.*\\); NDJSON rows are read by recalibrate$`,
    ),
  },
]) {
  it(`${what}: one line naming the format seen and the ones read`, () => {
    const out = join(dir, 'report');
    const result = runEntry(entry, [
      '--model',
      DIGITS,
      ...args(),
      ...(entry === 'src/cli/report.ts' ? ['--out', out] : []),
    ]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trimEnd()).toMatch(expected);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
  });
}
