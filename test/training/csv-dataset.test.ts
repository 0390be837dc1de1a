/**
 * CSV data files: parseCsv, datasetFromTable and loadCsvDataset. Every error is DATA_INVALID and
 * names the file and, where there is one, the line and the column.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  datasetFromTable,
  loadCsvDataset,
  loadTrainingConfig,
  parseCsv,
  readTrainingConfigJson,
  selectRows,
} from '../../src/training/index.js';
import { makeTempDir, removeTempDirs, writeTempFile } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

/** The DATA_INVALID error message of a failing call. */
function dataError(run: () => unknown): string {
  try {
    run();
  } catch (e) {
    expect((e as { code?: string }).code).toBe('DATA_INVALID');
    return (e as Error).message;
  }
  throw new Error('expected a DATA_INVALID error');
}

const classify = (text: string, labelColumn = 'label') =>
  datasetFromTable(parseCsv(text, 'f.csv'), labelColumn, 'classification');

describe('parseCsv', () => {
  it('reads a header and rows; quotes, CRLF, a BOM and surrounding spaces are handled', () => {
    const table = parseCsv('\ufeff"a",b , label\r\n1, 2 ,"x,y"\r\n3,4,z\r\n', 'f.csv');
    expect(table.header).toEqual(['a', 'b', 'label']);
    expect(table.rows).toEqual([
      ['1', '2', 'x,y'],
      ['3', '4', 'z'],
    ]);
    expect(table.source).toBe('f.csv');
  });

  it('rejects a file without a header row (line 1 holds only numbers)', () => {
    const message = dataError(() => parseCsv('5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n', 'f.csv'));
    expect(message).toContain('f.csv');
    expect(message).toContain('no header row');
  });

  it('rejects an empty file (or one of blank lines only)', () => {
    expect(dataError(() => parseCsv('', 'f.csv'))).toContain('f.csv: the file is empty');
    expect(dataError(() => parseCsv('\n \n\r\n', 'f.csv'))).toContain('empty');
  });

  it('rejects a ragged row, naming its line and both cell counts', () => {
    const message = dataError(() => parseCsv('a,b,label\n1,2,0\n3,4\n5,6,1\n', 'f.csv'));
    expect(message).toContain('line 3');
    expect(message).toContain('2 cells');
    expect(message).toContain('3');
  });

  it('rejects a row with too many cells', () => {
    expect(dataError(() => parseCsv('a,b,label\n1,2,0,9\n', 'f.csv'))).toContain('line 2');
  });

  it('rejects duplicate and empty column names', () => {
    expect(dataError(() => parseCsv('a,a,label\n1,2,0\n', 'f.csv'))).toContain('"a" twice');
    expect(dataError(() => parseCsv('a,,label\n1,2,0\n', 'f.csv'))).toContain('column 2');
  });

  it('rejects malformed CSV (an unclosed quote)', () => {
    expect(dataError(() => parseCsv('a,"b,label\n1,2,0\n', 'f.csv'))).toBe(
      'f.csv: not valid CSV: a quoted cell of the first row is still open at the end of the file',
    );
  });

  it('names the line of a stray quote and quotes a short, escaped prefix of its cell', () => {
    expect(dataError(() => parseCsv('a,b\n1,2"3\n', 'f.csv'))).toBe(
      'f.csv: line 2: not valid CSV: a quote inside the unquoted cell "2"',
    );
    expect(dataError(() => parseCsv('a,b\n1,"2"\u0001\n', 'f.csv'))).toBe(
      'f.csv: line 2: not valid CSV: a quoted cell is followed by more than a comma or the end of the line',
    );
  });

  it('a binary file read as CSV: one short printable line, not the bytes it holds', () => {
    // Seeded bytes with a quote after 600 others: csv-parse's own message quoted all 600.
    let state = 7;
    const bytes = Buffer.alloc(2000, 0);
    for (let i = 0; i < bytes.length; i++) {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      bytes[i] = state >>> 23;
    }
    const noQuote = (b: number) => (b === 0x22 || b === 0x2c || b === 0x0a ? 0x01 : b);
    for (let i = 0; i < bytes.length; i++) bytes[i] = noQuote(bytes[i]!);
    bytes[600] = 0x22;
    const message = dataError(() => parseCsv(bytes.toString('utf8'), 'f.csv'));
    expect(message).toMatch(/^f\.csv: line \d+: not valid CSV: a quote inside the unquoted cell "/);
    expect(message.length).toBeLessThan(160);
    expect(message).toMatch(/…"$/);
    expect(message).not.toMatch(/[\p{C}\n]/u);
  });

  it('quotes a duplicate header name escaped and cut', () => {
    const name = `\u0007${'x'.repeat(300)}`;
    expect(dataError(() => parseCsv(`${name},${name}\n1,2\n`, 'f.csv'))).toBe(
      `f.csv: header names column "\\u0007${'x'.repeat(58)}…" twice`,
    );
  });
});

describe('datasetFromTable', () => {
  it('splits features from the label column wherever it is', () => {
    const data = classify('label,x,y\nb,1,2\na,3,4\nb,5,6\n');
    expect(data.featureNames).toEqual(['x', 'y']);
    expect(data.width).toBe(2);
    expect(data.rows).toBe(3);
    expect(Array.from(data.features)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(data.labels).toEqual(['a', 'b']);
    expect(Array.from(data.targets)).toEqual([1, 0, 1]);
  });

  it('refuses an empty label cell as it refuses an empty feature cell, naming line and column', () => {
    // Blank lines are counted: the empty label is on line 4 of the file.
    expect(dataError(() => classify('a,label\n1,x\n\n2,\n3,y\n'))).toBe(
      'f.csv: line 4, column "label": the label is empty (a row without a label cannot be trained on)',
    );
    expect(dataError(() => classify('a,label\n1,x\n,y\n'))).toContain(
      'f.csv: line 3, column "a": "" is not a finite number',
    );
  });

  it('names the line and the column of a non-numeric cell', () => {
    const message = dataError(() => classify('a,b,label\n1,2,0\n3,x,1\n'));
    expect(message).toBe('f.csv: line 3, column "b": "x" is not a finite number');
  });

  it('a text column is named with the rule and the ways out (review60: penguins with body_mass_g as the label)', () => {
    const message = dataError(() => classify('species,a,label\nAdelie,1,0\nGentoo,2,1\n'));
    expect(message).toBe(
      'f.csv: line 2, column "species": "Adelie" is not a finite number; every column but the label ("label") is a numeric feature: drop or encode column "species", or make it the label (--label-column)',
    );
  });

  it('rejects empty, NaN and infinite cells', () => {
    expect(dataError(() => classify('a,b,label\n1,,0\n'))).toContain('line 2, column "b"');
    expect(dataError(() => classify('a,b,label\n1,2,0\nNaN,2,0\n'))).toContain(
      'line 3, column "a"',
    );
    expect(dataError(() => classify('a,b,label\n1,Infinity,0\n'))).toContain('"Infinity"');
  });

  it('counts lines as the file does, even after a blank line', () => {
    // The bad cell is on line 4 of the file; the blank line 3 is skipped by the parser.
    const message = dataError(() => classify('a,b,label\n1,2,0\n\n3,x,1\n'));
    expect(message).toContain('line 4, column "b"');
  });

  it('names an unknown label column and lists the columns', () => {
    const message = dataError(() => classify('a,b,label\n1,2,0\n', 'species'));
    expect(message).toBe('f.csv: unknown label column "species" (columns: "a", "b", "label")');
  });

  it('lists the columns short, each quoted short and escaped (a binary header)', () => {
    // Each is cut at 64 characters of quoted text: "c0", 6 for U+202E, then 9 of 40 "\u0000";
    // the list at 128, so the first of them is shown, and the last after the count of the rest.
    const header = Array.from({ length: 20 }, (_, i) => `c${i}\u202e${'\u0000'.repeat(40)}`);
    const message = dataError(() => classify(`${header.join(',')}\n${'1,'.repeat(19)}1\n`));
    expect(message).toBe(
      `f.csv: unknown label column "label" (columns: "c0\\u202e${'\\u0000'.repeat(9)}…", … 18 more …, "c19\\u202e${'\\u0000'.repeat(9)}…")`,
    );
  });

  it('a cut list of columns still names the last one, and a likely misspelling is named', () => {
    const header = [...Array.from({ length: 64 }, (_, i) => `pixel_${i}`), 'label'];
    const csv = `${header.join(',')}\n${'1,'.repeat(64)}0\n`;
    expect(dataError(() => classify(csv, 'digit'))).toMatch(
      /^f\.csv: unknown label column "digit" \(columns: "pixel_0", .*, … \d+ more …, "label"\)$/,
    );
    expect(dataError(() => classify(csv, 'Label'))).toMatch(
      /^f\.csv: unknown label column "Label" \(did you mean "label"\? columns: "pixel_0", /,
    );
    // Two columns alike are no guess between them.
    expect(dataError(() => classify('a,labels,label1\n1,0,0\n', 'label'))).toBe(
      'f.csv: unknown label column "label" (columns: "a", "labels", "label1")',
    );
  });

  it('a number beyond the float32 range is named by line and column, in the range words', () => {
    expect(dataError(() => classify('a,b,label\n1,2,0\n3,-1e39,1\n'))).toBe(
      `f.csv: line 3, column "b": "-1e39" is outside the float32 range (it would round to ±Infinity; the largest float32 is 3.4028234663852886e+38)`,
    );
    // The largest value that rounds to a finite float32 is taken, as from JSON.
    expect(Array.from(classify('a,label\n3.4028235e38,0\n').features)).toEqual([
      Math.fround(3.4028235e38),
    ]);
  });

  it('rejects a table with no feature column', () => {
    expect(dataError(() => classify('label\n1\n2\n'))).toContain('no feature columns');
  });

  it('sorts numeric labels numerically (2 before 10)', () => {
    const data = classify('x,label\n0,10\n1,2\n2,1\n3,2\n');
    expect(data.labels).toEqual(['1', '2', '10']);
    expect(Array.from(data.targets)).toEqual([2, 1, 0, 1]);
  });

  it('sorts other labels lexicographically (by code unit: upper case first)', () => {
    expect(classify('x,label\n0,setosa\n1,Virginica\n2,versicolor\n').labels).toEqual([
      'Virginica',
      'setosa',
      'versicolor',
    ]);
    // One non-number makes the whole set lexicographic.
    expect(classify('x,label\n0,10\n1,2\n2,a\n3,1\n').labels).toEqual(['1', '10', '2', 'a']);
  });

  it('keeps given labels in their order and rejects a label outside them, naming the line', () => {
    const table = parseCsv('x,label\n0,b\n1,a\n2,c\n', 'f.csv');
    const data = datasetFromTable(
      parseCsv('x,label\n0,b\n1,a\n', 'f.csv'),
      'label',
      'classification',
      { labels: ['b', 'a'] },
    );
    expect(data.labels).toEqual(['b', 'a']);
    expect(Array.from(data.targets)).toEqual([0, 1]);
    const message = dataError(() =>
      datasetFromTable(table, 'label', 'classification', { labels: ['a', 'b'] }),
    );
    expect(message).toBe(
      `f.csv: line 4, column "label": label "c" is not one of the model's labels`,
    );
  });

  it('regression: the label column is a numeric target, checked like a feature', () => {
    const table = parseCsv('x,y\n1,0.5\n2,-1.5\n', 'f.csv');
    const data = datasetFromTable(table, 'y', 'regression');
    expect(data.labels).toBeUndefined();
    expect(Array.from(data.targets)).toEqual([0.5, -1.5]);
    const bad = parseCsv('x,y\n1,0.5\n2,high\n', 'f.csv');
    expect(dataError(() => datasetFromTable(bad, 'y', 'regression'))).toContain(
      'line 3, column "y"',
    );
  });

  it('selectRows picks rows in the given order', () => {
    const data = classify('x,y,label\n1,2,a\n3,4,b\n5,6,a\n');
    const picked = selectRows(data, [2, 0]);
    expect(picked.rows).toBe(2);
    expect(Array.from(picked.features)).toEqual([5, 6, 1, 2]);
    expect(Array.from(picked.targets)).toEqual([0, 0]);
  });
});

describe('loadCsvDataset', () => {
  const dir = makeTempDir('csv');

  it('reads the iris file with its sha256', async () => {
    const path = new URL('../../data/iris/iris.csv', import.meta.url);
    const { data, sha256 } = await loadCsvDataset(fileURLToPath(path), 'label', 'classification');
    expect(data.rows).toBe(150);
    expect(data.width).toBe(4);
    expect(data.labels).toEqual(['0', '1', '2']);
    expect(sha256).toBe(createHash('sha256').update(readFileSync(path)).digest('hex'));
  });

  it('rejects a missing file, naming it', async () => {
    const path = join(dir, 'missing.csv');
    await expect(loadCsvDataset(path, 'label', 'classification')).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: `cannot read data file ${path}: no such file`,
    });
  });

  it('rejects a header without data rows', async () => {
    const path = writeTempFile(dir, 'header-only.csv', 'a,b,label\n');
    await expect(loadCsvDataset(path, 'label', 'classification')).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: expect.stringContaining('no data rows'),
    });
  });

  it('names the file in cell errors', async () => {
    const path = writeTempFile(dir, 'bad.csv', 'a,b,label\n1,2,0\n3,oops,1\n');
    await expect(loadCsvDataset(path, 'label', 'classification')).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: `${path}: line 3, column "b": "oops" is not a finite number`,
    });
  });
});

describe('loadTrainingConfig: one reader with the train CLI (readTrainingConfigJson)', () => {
  const dir = makeTempDir('config');

  it('refuses JSON that is not an object, as the train CLI does, before the schema', async () => {
    const path = writeTempFile(dir, 'array.json', '[{"name": "iris"}]');
    await expect(loadTrainingConfig(path)).rejects.toMatchObject({
      code: 'TRAINING_CONFIG_INVALID',
      message: `${path}: must be a JSON object`,
    });
    await expect(readTrainingConfigJson(path)).rejects.toThrow(`${path}: must be a JSON object`);
  });

  it('reads an object as it is (the CLI writes its flags in before the schema fills defaults)', async () => {
    const path = writeTempFile(dir, 'config.json', '{"data": {"path": "x.csv"}}');
    expect(await readTrainingConfigJson(path)).toEqual({ data: { path: 'x.csv' } });
    expect((await loadTrainingConfig(path)).training.epochs).toBe(30);
  });
});
