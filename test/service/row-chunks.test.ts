/**
 * The readers of rows of text (service's row-chunks.ts: the HTTP uploads' and the recalibrate
 * CLI's data file): they hand rows on as float32 chunks while the text is still arriving, so no
 * more than a chunk's worth of text and two chunks are held, whatever the number of rows (the
 * CLI once read a 2 M-row CSV whole, as text, a table of strings and number[][], and ran out of
 * heap); a bad line names the file and line in the words of a file read whole.
 */
import { describe, expect, it } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import { csvRowChunks, ndjsonRowChunks } from '../../src/service/index.js';
import { parseCsv } from '../../src/training/index.js';

const WIDTH = 3;
const CHUNK_ROWS = 100;
const ROWS = 1050;

const row = (r: number) => [r, r / 7, -(r + 1) * 1e-3];

/** The text in parts, one line a part, counting the parts taken. */
function lines(text: string) {
  const counter = { taken: 0 };
  async function* parts() {
    for (const line of text.split(/(?<=\n)/)) {
      counter.taken++;
      yield line;
    }
  }
  return { parts: parts(), counter };
}

/**
 * Reads every chunk, noting how many lines had been taken when each arrived, and the values.
 */
async function drain(chunks: AsyncIterable<Float32Array>, counter: { taken: number }) {
  const takenAt: number[] = [];
  const values: number[] = [];
  for await (const chunk of chunks) {
    takenAt.push(counter.taken);
    values.push(...chunk);
  }
  return { takenAt, values };
}

async function failure(chunks: AsyncIterable<Float32Array>): Promise<NormserveError> {
  try {
    for await (const _ of chunks) {
      // read on
    }
  } catch (e) {
    if (e instanceof NormserveError) return e;
    throw e;
  }
  throw new Error('no error');
}

const expected = Float32Array.from(Array.from({ length: ROWS }, (_, r) => row(r)).flat());
const options = { source: 'data.x', chunkRows: CHUNK_ROWS };

describe('row chunks', () => {
  it('NDJSON: each chunk of rows is handed on before the next chunk’s lines are read', async () => {
    const text = `${Array.from({ length: ROWS }, (_, r) => JSON.stringify(row(r))).join('\n')}\n`;
    const { parts, counter } = lines(text);
    const got = await drain(
      ndjsonRowChunks(parts, WIDTH, { ...options, maxLineChars: 1 << 20 }),
      counter,
    );
    // Chunk k arrives once its own lines are read, not the next chunk's: the whole text is never
    // held, nor a JS array per row.
    expect(got.takenAt.slice(0, -1)).toEqual(
      Array.from({ length: 10 }, (_, k) => (k + 1) * CHUNK_ROWS),
    );
    expect(Float32Array.from(got.values)).toEqual(expected);
  });

  it('CSV: the same, the header taking the first line', async () => {
    const text = `a,b,c,label\n${Array.from({ length: ROWS }, (_, r) => [...row(r), 'x'].join(',')).join('\n')}\n`;
    const { parts, counter } = lines(text);
    const model = { name: 'm', inputWidth: WIDTH, featureNames: undefined };
    const got = await drain(
      csvRowChunks(parts, model, 'label', { ...options, maxRecordChars: 1 << 20 }),
      counter,
    );
    // csv-parse is not involved for plain lines; a line is split when the next part arrives at most.
    got.takenAt.slice(0, -1).forEach((taken, k) => {
      expect(taken).toBeGreaterThanOrEqual(1 + (k + 1) * CHUNK_ROWS);
      expect(taken).toBeLessThanOrEqual(2 + (k + 1) * CHUNK_ROWS);
    });
    expect(Float32Array.from(got.values)).toEqual(expected);
  });

  it('a bad NDJSON line is DATA_INVALID naming the file, line and value', async () => {
    const text = '[1,2,3]\n\n[1,"x",3]\n';
    const e = await failure(
      ndjsonRowChunks(lines(text).parts, WIDTH, { ...options, maxLineChars: 1 << 20 }),
    );
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toBe('data.x: line 3[1]: expected a finite number, got "x"');
    expect(e.errors).toEqual([
      { path: 'data.x: line 3[1]', message: 'expected a finite number, got "x"' },
    ]);
  });

  it('NDJSON blank lines — runs of line ends, whitespace, CRLF, in one part or split — are counted, never rows', async () => {
    const text = `\n\n\n[1,2,3]\n \t\r\n\r\n\n\n\n[4,5,6]\r\n${'\n'.repeat(1000)}  \n[7,8,9]\n\n\n[1,"y",3]\n`;
    // Whole, and a character a part (a run of line ends split across parts).
    for (const parts of [
      (async function* () {
        yield text;
      })(),
      (async function* () {
        for (const c of text) yield c;
      })(),
    ]) {
      const values: number[] = [];
      const chunks = ndjsonRowChunks(parts, WIDTH, { ...options, maxLineChars: 1 << 20 });
      const e = await (async () => {
        try {
          for await (const chunk of chunks) values.push(...chunk);
        } catch (error) {
          return error as NormserveError;
        }
        throw new Error('no error');
      })();
      expect(e.message).toBe('data.x: line 1015[1]: expected a finite number, got "y"');
      expect(values).toEqual([]);
    }
    const good = '\n\n[1,2,3]\n\n \n\r\n[4,5,6]\n\n';
    const got = await drain(
      ndjsonRowChunks(lines(good).parts, WIDTH, { ...options, maxLineChars: 1 << 20 }),
      lines(good).counter,
    );
    expect(got.values).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a bad CSV cell is named as parseCsv’s table names it', async () => {
    const text = 'a,b,c\n1,2,3\n1,zz,3\n';
    const model = { name: 'm', inputWidth: WIDTH, featureNames: undefined };
    const e = await failure(
      csvRowChunks(lines(text).parts, model, 'label', { ...options, maxRecordChars: 1 << 20 }),
    );
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toBe('data.x: line 3, column "b": "zz" is not a finite number');
    expect(parseCsv(text, 'data.x').rows).toHaveLength(2);
  });

  it('a label column named by the caller must be in the header', async () => {
    const model = { name: 'm', inputWidth: WIDTH, featureNames: undefined };
    const e = await failure(
      csvRowChunks(lines('a,b,c\n1,2,3\n').parts, model, 'target', {
        ...options,
        maxRecordChars: 1 << 20,
        namedLabelColumn: 'target',
      }),
    );
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toContain('"target"');
  });
});
