/**
 * `npm run predict` as a user runs it: a row whose outputs overflow float32 (64 values of 3e38
 * on the digits model) is refused as the HTTP route refuses it — the same message, naming the
 * row by its CSV line or its place in the JSON — on one stderr line, exit 1, nothing on stdout,
 * instead of printing null predictions.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { digitsTestRows } from '../helpers/digits.js';
import { nodeArgs, ROOT } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const dir = makeTempDir('predict-cli');
const { x } = digitsTestRows();
const huge = Array.from({ length: 64 }, () => 3e38);
const OVERFLOW = "the model's outputs overflow float32 for this row (values too large)";

function predictCli(input: string, ...flags: string[]) {
  const result = spawnSync(
    process.execPath,
    [...nodeArgs('src/cli/predict.ts'), '--model', 'models/digits', '--input', input, ...flags],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function csv(name: string, rows: readonly (readonly number[])[]): string {
  const file = join(dir, name);
  const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
  writeFileSync(file, `${[header, ...rows.map((r) => r.join(','))].join('\n')}\n`);
  return file;
}

describe('npm run predict: a row whose outputs overflow float32', () => {
  it('in a JSON file: refused by its place (rows[i]), exit 1, nothing printed', () => {
    const file = join(dir, 'rows.json');
    writeFileSync(file, JSON.stringify({ instances: [x[0], x[1], huge, x[2]] }));
    for (const flags of [[], ['--no-fused']]) {
      const result = predictCli(file, ...flags);
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`predict: rows[2]: ${OVERFLOW}\n`);
    }
  });

  it('in a CSV: refused by its line of the file (the header is line 1)', () => {
    const file = csv('rows.csv', [x[0]!, huge, x[1]!]);
    const result = predictCli(file);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`predict: ${file}: line 3: ${OVERFLOW}\n`);
  });

  it('the same rows without it are predicted as before', () => {
    const result = predictCli(csv('fine.csv', [x[0]!, x[1]!]));
    expect(result.status, result.stderr).toBe(0);
    const printed = JSON.parse(result.stdout) as { predictions: number[][]; labels: string[] };
    expect(printed.labels).toHaveLength(2);
    expect(printed.predictions.flat().every(Number.isFinite)).toBe(true);
  });
});
