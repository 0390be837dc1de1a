/**
 * `npm run predict` on a file with nothing to predict (a CSV header alone, an empty JSON array)
 * is one line and exit 1 — it exited 0 with `"predictions":[]` and, for a CSV with the label
 * column, printed "accuracy NaN (0/0)".
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Entry, nodeArgs, ROOT } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

const dir = makeTempDir('predict-empty');
afterAll(() => removeTempDirs());

function run(entry: Entry, args: readonly string[]) {
  const result = spawnSync(process.execPath, [...nodeArgs(entry), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const header = `${Array.from({ length: 64 }, (_, i) => `p${i}`).join(',')},label\n`;

describe('nothing to predict', () => {
  it('a CSV of a header alone', () => {
    const csv = join(dir, 'header.csv');
    writeFileSync(csv, header);
    const result = run('src/cli/predict.ts', ['--model', 'models/digits', '--input', csv]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(`predict: ${csv}: no data rows after the header\n`);
    expect(result.stdout).toBe('');
  });

  it('a JSON file of no rows', () => {
    for (const [name, text] of [
      ['empty.json', '[]'],
      ['instances.json', '{"instances": []}'],
    ] as const) {
      const file = join(dir, name);
      writeFileSync(file, text);
      const result = run('src/cli/predict.ts', ['--model', 'models/digits', '--input', file]);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(`predict: ${file}: no rows to predict\n`);
    }
  });

  it('report says the same for a header alone', () => {
    const csv = join(dir, 'header-report.csv');
    writeFileSync(csv, header);
    const result = run('src/cli/report.ts', [
      '--model',
      'models/digits',
      '--data',
      csv,
      '--out',
      join(dir, 'r'),
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(`report: ${csv}: no data rows after the header\n`);
  });
});
