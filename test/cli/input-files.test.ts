/**
 * The input files of the offline CLIs. A binary file given as a CSV or JSON input is refused in
 * one short printable line: the CSV reader's message quoted up to ~500 raw bytes of it. Nothing to predict (a CSV header alone, an empty JSON
 * array) is one line and exit 1 — predict exited 0 with `"predictions":[]` and, for a CSV with
 * the label column, printed "accuracy NaN (0/0)". A UTF-8 byte order mark (what Excel and
 * Notepad write) is dropped from JSON and NDJSON files as from CSV ones: predict and recalibrate
 * refused such files as "not valid JSON", while the HTTP upload and the CSV reader took them.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeRepository } from '../helpers/app.js';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { runEntry as run } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

/** The bundled digits version (not models/digits: `npm run train` may have added versions). */
const DIGITS = bundledVersionDir('digits');

const dir = makeTempDir('input-files');
const repository = makeRepository(['digits']);
afterAll(() => {
  removeTempDirs();
  rmSync(repository, { recursive: true, force: true });
});
const BOM = '\uFEFF';

const header = `${Array.from({ length: 64 }, (_, i) => `p${i}`).join(',')},label\n`;

describe('nothing to predict', () => {
  it('a CSV of a header alone', () => {
    const csv = join(dir, 'header.csv');
    writeFileSync(csv, header);
    const result = run('src/cli/predict.ts', ['--model', DIGITS, '--input', csv]);
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
      const result = run('src/cli/predict.ts', ['--model', DIGITS, '--input', file]);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(`predict: ${file}: no rows to predict\n`);
    }
  });

  it('report says the same for a header alone', () => {
    const csv = join(dir, 'header-report.csv');
    writeFileSync(csv, header);
    const result = run('src/cli/report.ts', [
      '--model',
      DIGITS,
      '--data',
      csv,
      '--out',
      join(dir, 'r'),
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(`report: ${csv}: no data rows after the header\n`);
  });
});

describe('a CSV of the wrong width', () => {
  // Named once for the file (it said `rows[0]: expected 64 values, got 2`, or, in report, row 1's).
  it('predict names the column count, the model width and the missing feature names', () => {
    const csv = join(dir, 'narrow.csv');
    writeFileSync(csv, 'p0,p1,label\n1,2,3\n');
    const result = run('src/cli/predict.ts', ['--model', DIGITS, '--input', csv]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^predict: ${csv.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 2 feature columns; model "digits" takes 64 \\(no column named "p2", "p3", .* and \\d+ more\\)\n$`,
      ),
    );
    expect(result.stdout).toBe('');
  });

  it('predict refuses a header that names only some of the feature columns; one that names none is read in order', () => {
    // review60: p1 renamed and the columns reversed was read in file order, with exit 0.
    const rows = digitsTestRows().x.slice(0, 3);
    const names = Array.from({ length: 64 }, (_, i) => (i === 1 ? 'pixel1' : `p${i}`));
    const renamed = join(dir, 'renamed.csv');
    writeFileSync(
      renamed,
      `${[...names].reverse().join(',')}\n${rows.map((r) => [...r].reverse().join(',')).join('\n')}\n`,
    );
    const refused = run('src/cli/predict.ts', ['--model', DIGITS, '--input', renamed]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(
      `predict: ${renamed}: no column named "p1": the header has 63 of the 64 feature names model "digits" was trained with, so its columns are not matched by name; rename the column, or give a header with none of those names to read the columns in file order\n`,
    );
    expect(refused.stdout).toBe('');

    const own = join(dir, 'own-names.csv');
    writeFileSync(
      own,
      `${Array.from({ length: 64 }, (_, i) => `x${i}`).join(',')}\n${rows.map((r) => r.join(',')).join('\n')}\n`,
    );
    const inOrder = run('src/cli/predict.ts', ['--model', DIGITS, '--input', own]);
    expect(inOrder.status, inOrder.stderr).toBe(0);
    const named = join(dir, 'named.csv');
    writeFileSync(
      named,
      `${header.replace(',label', '').trimEnd()}\n${rows.map((r) => r.join(',')).join('\n')}\n`,
    );
    expect(inOrder.stdout).toBe(
      run('src/cli/predict.ts', ['--model', DIGITS, '--input', named]).stdout,
    );
  });

  it('report says the same', () => {
    const csv = join(dir, 'narrow-report.csv');
    writeFileSync(csv, 'a,b,label\n1,2,3\n4,5,6\n');
    const result = run('src/cli/report.ts', [
      '--model',
      DIGITS,
      '--data',
      csv,
      '--out',
      join(dir, 'r2'),
    ]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /: 2 feature columns; model "digits" takes 64 \(no column named "p0", /,
    );
  });
});

describe('JSON rows where CSV is read (review60: "no data rows after the header")', () => {
  it('predict and train name what the first line holds; train refuses .ndjson by its name', () => {
    const file = join(dir, 'rows-in.csv');
    writeFileSync(file, '[[5.1,3.5,1.4,0.2]]\n');
    const line = `${file}: the first line starts with "[": JSON or NDJSON rows, not CSV (a header row naming the columns, then one row per line)\n`;
    const predicted = run('src/cli/predict.ts', ['--model', DIGITS, '--input', file]);
    expect([predicted.status, predicted.stderr]).toEqual([1, `predict: ${line}`]);
    const out = makeTempDir('json-rows-train');
    const trained = run('src/cli/train.ts', ['--data', file, '--out', out, '--no-progress']);
    expect([trained.status, trained.stderr]).toEqual([1, `train: ${line}`]);
    const ndjson = join(dir, 'rows.ndjson');
    writeFileSync(ndjson, '[1,2]\n');
    const byName = run('src/cli/train.ts', ['--data', ndjson, '--out', out, '--no-progress']);
    expect([byName.status, byName.stderr]).toEqual([
      1,
      `train: ${ndjson}: NDJSON (by its extension .ndjson): train reads CSV (a header row)\n`,
    ]);
  });
});

describe('a semicolon- or tab-separated file (review60: "1 feature column; model takes 64")', () => {
  it('train and report name the separator they saw', () => {
    for (const [separator, word] of [
      [';', 'semicolons'],
      ['\t', 'tabs'],
    ] as const) {
      const file = join(dir, `separated-${word}.csv`);
      writeFileSync(file, 'p0;p1;label\n1,5;2;3\n'.replaceAll(';', separator));
      const header = `"p0${separator === ';' ? ';' : '\\t'}p1${separator === ';' ? ';' : '\\t'}label"`;
      const line = `${file}: the header is one column holding ${word} (${header}): columns are separated by commas (RFC 4180); save the file as comma-separated values\n`;
      const out = makeTempDir('separated-train');
      const trained = run('src/cli/train.ts', ['--data', file, '--out', out, '--no-progress']);
      expect([trained.status, trained.stderr]).toEqual([1, `train: ${line}`]);
      const reported = run('src/cli/report.ts', [
        ...['--model', DIGITS, '--data', file, '--out', join(dir, `r-${word}`)],
      ]);
      expect([reported.status, reported.stderr]).toEqual([1, `report: ${line}`]);
    }
  });

  it('a header ending with the separator, or with an unnamed column, is seen too', () => {
    for (const [name, header] of [
      ['trailing', 'p0;p1;label;'],
      ['unnamed', 'p0;;label'],
    ] as const) {
      const file = join(dir, `separated-${name}.csv`);
      writeFileSync(file, `${header}\n1,5;2;3;\n`);
      const out = makeTempDir('separated-train');
      const trained = run('src/cli/train.ts', ['--data', file, '--out', out, '--no-progress']);
      expect([trained.status, trained.stderr]).toEqual([
        1,
        `train: ${file}: the header is one column holding semicolons ("${header}"): columns are separated by commas (RFC 4180); save the file as comma-separated values\n`,
      ]);
    }
  });
});

describe('a UTF-8 byte order mark', () => {
  const rows = digitsTestRows().x.slice(0, 5);

  it('predict reads a JSON file that starts with one', () => {
    const file = join(dir, 'bom.json');
    writeFileSync(file, `${BOM}${JSON.stringify({ instances: rows })}`);
    const result = run('src/cli/predict.ts', ['--model', DIGITS, '--input', file]);
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).predictions).toHaveLength(5);
  });

  it('train reads a config file that starts with one (review60: "not valid JSON")', () => {
    const file = join(dir, 'bom-config.json');
    writeFileSync(file, `${BOM}${readFileSync('configs/iris-mlp.json', 'utf8')}`);
    const result = run('src/cli/train.ts', ['--config', file, '--print-config']);
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ name: 'iris' });
  });

  it('recalibrate reads an NDJSON file that starts with one (CRLF line ends too)', () => {
    const file = join(dir, 'bom.ndjson');
    writeFileSync(file, `${BOM}${rows.map((r) => JSON.stringify(r)).join('\r\n')}\r\n`);
    const result = run('src/cli/recalibrate.ts', [
      '--model',
      join(repository, 'digits'),
      '--data',
      file,
      '--no-activate',
    ]);
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ version: 2, samples: 5 });
    const config = JSON.parse(readFileSync(join(repository, 'digits', '2', 'config.json'), 'utf8'));
    expect(config.provenance).toMatchObject({ kind: 'recalibration', samples: 5 });
  });
});

describe('a binary file given as an input', () => {
  /**
   * Seeded bytes. As a CSV (`at`): without quotes, commas or line ends but one quote or one line
   * end at `at`: a stray quote after that many bytes of one cell, or a header of one name and a
   * row of one cell.
   */
  function binary(name: string, seed: number, at?: { index: number; byte: number }): string {
    const bytes = Buffer.alloc(4000);
    let state = seed;
    for (let i = 0; i < bytes.length; i++) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      const b = state >>> 23;
      bytes[i] = at && [0x22, 0x2c, 0x0a, 0x0d].includes(b) ? 0x07 : b;
    }
    if (at) bytes[at.index] = at.byte;
    const file = join(dir, name);
    writeFileSync(file, bytes);
    return file;
  }

  /** Exit 1, nothing on stdout, one stderr line: the program, the file, at most 200 printable more. */
  function expectOneShortLine(result: ReturnType<typeof run>, program: string, file: string): void {
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    const prefix = `${program}: ${file}: `;
    expect(result.stderr.startsWith(prefix), result.stderr).toBe(true);
    expect(result.stderr.endsWith('\n')).toBe(true);
    const rest = result.stderr.slice(prefix.length, -1);
    expect(rest.length, rest).toBeLessThanOrEqual(200);
    expect(rest, rest).not.toMatch(/[\p{C}\p{Zl}\p{Zp}\n]/u);
  }

  const digitsModel = () => join(repository, 'digits');
  for (const lines of [false, true]) {
    const kind = lines ? 'a header and a cell of bytes' : 'a stray quote after 1500 bytes';
    it(`train, predict, recalibrate and report (${kind})`, () => {
      const at = lines ? { index: 2000, byte: 0x0a } : { index: 1500, byte: 0x22 };
      const file = binary(`binary-${lines}.csv`, 11, at);
      const train = run('src/cli/train.ts', ['--data', file, '--out', join(dir, 'no-train')]);
      expectOneShortLine(train, 'train', file);
      const predict = run('src/cli/predict.ts', ['--model', DIGITS, '--input', file]);
      expectOneShortLine(predict, 'predict', file);
      if (lines) {
        expect(train.stderr).toMatch(
          /unknown label column "label" \(the default; name the column to predict with --label-column; columns: ".*…"\)\n$/,
        );
        // One column of bytes: the width is refused before any cell is read.
        expect(predict.stderr).toMatch(/: 1 feature column; model "digits" takes 64 \(no column/);
      } else {
        expect(predict.stderr).toMatch(
          /line 1: not valid CSV: a quote inside the unquoted cell ".*…"\n$/,
        );
      }
      expectOneShortLine(
        run('src/cli/recalibrate.ts', ['--model', digitsModel(), '--data', file]),
        'recalibrate',
        file,
      );
      expectOneShortLine(
        run('src/cli/report.ts', [
          '--model',
          DIGITS,
          '--data',
          file,
          '--out',
          join(dir, 'no-report'),
        ]),
        'report',
        file,
      );
    });
  }

  it('predict with a binary .json file: the bytes V8 quotes are escaped', () => {
    const file = binary('binary.json', 13);
    const result = run('src/cli/predict.ts', ['--model', DIGITS, '--input', file]);
    expectOneShortLine(result, 'predict', file);
    expect(result.stderr).toContain('not valid JSON');
  });
});
