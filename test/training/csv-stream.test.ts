/**
 * csvRecords (a CSV read as it arrives, the recalibration upload's reader) against parseCsv (a
 * file read whole, the CLIs'): the same header, rows and line numbers for any text, however it is
 * cut into parts; a text parseCsv refuses is refused. The plain lines it splits itself and the
 * lines it leaves to csv-parse (quotes, spaces, CR, BOMs, blank lines) are mixed on purpose.
 */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import {
  type CsvTable,
  checkCsvRowWidth,
  csvHeader,
  csvRecords,
  parseCsv,
} from '../../src/training/index.js';

const SEED = 20261202;
const MAX_RECORD_CHARS = 1 << 20;

async function* partsOf(text: string, cuts: readonly number[]): AsyncGenerator<string> {
  let at = 0;
  for (const cut of [...new Set(cuts.map((c) => Math.min(c, text.length)))].sort((a, b) => a - b)) {
    yield text.slice(at, cut);
    at = cut;
  }
  yield text.slice(at);
}

/** The table csvRecords gives, checked as parseCsv checks a table, or the error's message. */
async function streamed(text: string, cuts: readonly number[]): Promise<CsvTable | string> {
  try {
    let header: string[] | undefined;
    const rows: string[][] = [];
    const lines: number[] = [];
    for await (const { record, line } of csvRecords(
      partsOf(text, cuts),
      'f.csv',
      MAX_RECORD_CHARS,
    )) {
      if (header === undefined) {
        header = csvHeader(record, 'f.csv');
        continue;
      }
      checkCsvRowWidth(record, header, line, 'f.csv');
      rows.push(record);
      lines.push(line);
    }
    if (header === undefined) return 'f.csv: the file is empty';
    return { source: 'f.csv', header, rows, lines };
  } catch (e) {
    if (!isNormserveError(e)) throw e;
    expect(e.code).toBe('DATA_INVALID');
    return e.message;
  }
}

function whole(text: string): CsvTable | string {
  try {
    return parseCsv(text, 'f.csv');
  } catch (e) {
    if (!isNormserveError(e)) throw e;
    return e.message;
  }
}

const plainCell = fc.constantFrom('0', '1.5', '-2', '16', '1e3', '', 'x', '3.25');
const oddCell = fc.constantFrom(
  ' 1',
  '2 ',
  '"3"',
  '"4,5"',
  '"a\nb"',
  '"c""d"',
  '\t6',
  '\uFEFF7',
  'e"f',
  '"g',
  '8\r9',
  '"h" ',
);
const cell = fc.oneof({ weight: 8, arbitrary: plainCell }, { weight: 1, arbitrary: oddCell });
const width = 3;
const dataLine = fc
  .oneof(
    { weight: 8, arbitrary: fc.array(cell, { minLength: width, maxLength: width }) },
    { weight: 1, arbitrary: fc.array(cell, { minLength: 0, maxLength: width + 1 }) },
  )
  .map((cells) => cells.join(','));
const headerLine = fc.constantFrom(
  'a,b,c',
  '\uFEFFa,b,c',
  'a b,c,d',
  '"a","b, c",d',
  ' a , b ,c',
  '"a\nb",c,d',
  '',
  '1,2,3',
  'a,a,b',
);
const eol = fc.constantFrom('\n', '\r\n', '\r');
const csvText = fc
  .tuple(
    headerLine,
    fc.array(
      fc.oneof(
        { weight: 6, arbitrary: dataLine },
        { weight: 1, arbitrary: fc.constantFrom('', ' ', '\r') },
      ),
      {
        maxLength: 12,
      },
    ),
    eol,
    fc.oneof(
      { weight: 6, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) },
    ),
    fc.boolean(),
  )
  .map(([header, lines, end, mixed, trailing]) =>
    [header, ...lines]
      .map((l, i) => `${l}${mixed && i % 3 === 2 ? (end === '\r\n' ? '\n' : '\r\n') : end}`)
      .join('')
      .slice(0, trailing ? undefined : -end.length),
  );

describe('csvRecords: parseCsv as the text arrives', () => {
  it('the same header, rows and lines for any text and any cuts; a refused text is refused', async () => {
    await fc.assert(
      fc.asyncProperty(
        csvText,
        fc.array(fc.nat({ max: 200 }), { maxLength: 6 }),
        async (text, cuts) => {
          const expected = whole(text);
          const got = await streamed(text, cuts);
          if (typeof expected !== 'string') expect(got, JSON.stringify(text)).toEqual(expected);
          else {
            // A refusal may differ (the header or a row's width is checked as it comes, before a
            // later syntax error); an open quote both report is placed alike.
            expect(typeof got, JSON.stringify(text)).toBe('string');
            const open = 'still open at the end of the file';
            if (expected.includes(open) && (got as string).includes(open))
              expect(got, JSON.stringify(text)).toBe(expected);
          }
        },
      ),
      { numRuns: 3000, seed: SEED },
    );
  });

  it('syntax errors are worded and placed as for a whole file', async () => {
    for (const text of [
      'a,b\n1,2\n3,"4\n',
      'a,b\n1,2\n3,4"5\n',
      'a,b\r\n1,2\r\n"3"x,4\r\n',
      'a,b\n1,2\n 3,4\n5,6"\n',
      '"a,b\n1,2\n',
      'a,b\n1,2\n\n3,"4\n5,6\n',
      // Records csv-parse took in the part it failed on (the second reader of 2026-12-04).
      'a,b\n"1",2\n3,4\n5,"6\n',
      'a,b\r1,2\r\r3,4\r5,"6\r',
      '"a\nx",b\n1,2\n3,"4\n',
      'a,b\n1,2\n 3,4\n5,"6\n',
    ]) {
      expect(await streamed(text, [5]), JSON.stringify(text)).toBe(whole(text));
    }
    // An open quote is placed where its row begins, after the last whole row (line 2), not at
    // the end of the file where csv-parse stopped (line 6).
    expect(whole('a,b\n1,2\n\n3,"4\n5,6\n')).toBe(
      'f.csv: not valid CSV: a quoted cell of the row after line 2 is still open at the end of the file',
    );
  });

  it('CR line ends, as parseCsv reads them (a reviewer found them refused as one long line)', async () => {
    const text = `a,b\r${Array.from({ length: 5000 }, (_, i) => `${i},${i + 1}`).join('\r')}\r`;
    const expected = whole(text);
    expect(typeof expected).not.toBe('string');
    expect(await streamed(text, [3, 4, 5, 1000, 40_000])).toEqual(expected);
    // Longer than a record may be: the fast path, which splits at LF only, took it for one line.
    let rows = 0;
    for await (const _ of csvRecords(partsOf(text, [3, 4, 5, 1000, 40_000]), 'f.csv', 1000)) rows++;
    expect(rows).toBe(5001);
  });

  it('each part is searched once: a long line in small pieces costs its length, not its square', async () => {
    const line = '1'.repeat(200_000);
    const text = `a\n${line}\n`;
    const cuts = Array.from({ length: text.length / 16 }, (_, i) => i * 16);
    let searched = 0;
    const indexOf = String.prototype.indexOf;
    const spy = vi.spyOn(String.prototype, 'indexOf').mockImplementation(function (
      this: string,
      search: string,
      from?: number,
    ) {
      if (this.length > 1000) searched += this.length - (from ?? 0);
      return indexOf.call(this, search, from);
    });
    try {
      for await (const _ of csvRecords(partsOf(text, cuts), 'f.csv', MAX_RECORD_CHARS));
    } finally {
      spy.mockRestore();
    }
    // Searched from the start at every part, it was ~text.length² / 32 = 1.25e9 characters.
    expect(searched).toBeLessThan(4 * text.length);
  });

  it('a line longer than the bound is refused naming it, not held', async () => {
    const text = `a,b\n1,2\n${'1'.repeat(100)}`;
    const chunks = csvRecords(partsOf(text, [10, 50, 90]), '', 64);
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const { line } of chunks) got.push(line);
      })(),
    ).rejects.toThrow(
      'not valid CSV: the row after line 2 is longer than any row of numbers (a quoted cell left open?)',
    );
    expect(got).toEqual([1, 2]);
  });

  it('a quote left open past the bound is placed after the last record csv-parse took', async () => {
    // The slow path from line 2 (a quote); records 2–4 are taken in the part the bound stops.
    const text = `a,b\n"1",2\n3,4\n5,6\n7,"8\n${'9,9\n'.repeat(40)}`;
    await expect(
      (async () => {
        for await (const _ of csvRecords(partsOf(text, [400]), 'f.csv', 64));
      })(),
    ).rejects.toThrow('f.csv: not valid CSV: the row after line 4 is longer than any row');
  });

  it('a quote left open is placed where its row begins, not where the bound stopped it', async () => {
    // csv-parse reads from line 3 (a quote); the open cell runs over 40 more lines past the bound.
    const text = `a,b\n1,2\n3,"4\n${'5,6\n'.repeat(40)}`;
    await expect(
      (async () => {
        for await (const _ of csvRecords(partsOf(text, [7, 20, 60]), 'f.csv', 64));
      })(),
    ).rejects.toThrow(
      'f.csv: not valid CSV: the row after line 2 is longer than any row of numbers (a quoted cell left open?)',
    );
  });
});
