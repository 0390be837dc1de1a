/**
 * The recalibration upload readers hand rows on in chunks bounded in bytes as well as in rows
 * (two chunks are held at a time: RecalibrationSession.pushAll reads one while the other is
 * measured), so a wide model's upload does not hold 4,096 rows of it twice.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import { csvRows, float32Rows, ndjsonRows } from '../../src/http/upload-readers.js';
import { InputShape } from '../../src/service/index.js';

/** The rows of each chunk a reader yields, and every value, copied as they come. */
async function collect(chunks: AsyncIterable<Float32Array>, width: number) {
  const sizes: number[] = [];
  const copies: Float32Array[] = [];
  for await (const chunk of chunks) {
    sizes.push(chunk.length / width);
    copies.push(chunk.slice());
  }
  const values = new Float32Array(copies.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of copies) {
    values.set(c, at);
    at += c.length;
  }
  return { sizes, values };
}

describe('upload readers', () => {
  it('float32: chunks of at most 4 MiB for wide rows, 4,096 rows for narrow ones', async () => {
    const wide = 2048; // 8 KiB a row: 512 rows a chunk
    const rows = Float32Array.from({ length: 1200 * wide }, (_, i) => i % 1000);
    const bytes = Buffer.from(rows.buffer);
    // Parts that split rows and values anywhere.
    const parts = [bytes.subarray(0, 5), bytes.subarray(5, 3_000_001), bytes.subarray(3_000_001)];
    const got = await collect(float32Rows(Readable.from(parts), wide, 1 << 30), wide);
    expect(got.sizes).toEqual([512, 512, 176]);
    expect(Buffer.from(got.values.buffer).equals(Buffer.from(rows.buffer))).toBe(true);
    const narrow = Float32Array.from({ length: 5000 * 64 }, (_, i) => i % 77);
    const small = await collect(
      float32Rows(Readable.from([Buffer.from(narrow.buffer)]), 64, 1 << 30),
      64,
    );
    expect(small.sizes).toEqual([4096, 904]);
  });

  it('NDJSON: the same bound', async () => {
    const wide = 4096; // 16 KiB a row: 256 rows a chunk
    const line = `[${Array.from({ length: wide }, (_, i) => i % 10).join(',')}]\n`;
    const text = line.repeat(300);
    const got = await collect(ndjsonRows(Readable.from([Buffer.from(text)]), wide, 1 << 30), wide);
    expect(got.sizes).toEqual([256, 44]);
    expect(Array.from(got.values.subarray(wide * 299, wide * 299 + 12))).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1,
    ]);
  });

  it('NDJSON lines and JSON instances word a row of the wrong width alike, one value singular', async () => {
    const ndjsonError = async (width: number, line: string) => {
      try {
        await collect(ndjsonRows(Readable.from([Buffer.from(line)]), width, 1 << 30), width);
      } catch (err) {
        return (err as NormserveError).errors[0]?.message;
      }
      throw new Error('the line was taken');
    };
    const instancesError = (width: number, row: number[]) => {
      try {
        new InputShape([width]).instances([row], 'instances');
      } catch (err) {
        expect(err).toBeInstanceOf(NormserveError);
        return (err as NormserveError).errors[0]?.message;
      }
      throw new Error('the row was taken');
    };
    for (const [width, row, message] of [
      [64, [1, 2, 3], 'expected 64 values, got 3'],
      [1, [1, 2], 'expected 1 value, got 2'],
      [2, [], 'expected 2 values, got 0'],
    ] as const) {
      expect(await ndjsonError(width, `${JSON.stringify(row)}\n`)).toBe(message);
      expect(instancesError(width, [...row])).toBe(message);
    }
  });

  it('CSV: the same bound; rows as the CLI reads them, whatever the parts split (a line, a character)', async () => {
    const wide = 4096; // 16 KiB a row: 256 rows a chunk
    const names = Array.from({ length: wide }, (_, i) => `f${i}`);
    const model = { name: 'wide', inputWidth: wide, featureNames: names };
    // The label first and the features reversed: the recorded names pick and order the columns.
    const header = `label,é,${[...names].reverse().join(',')}\r\n`;
    const line = (r: number) =>
      `${r % 10},"ü ${r}",${Array.from({ length: wide }, (_, i) => (wide - 1 - i + r) % 10).join(',')}\r\n`;
    const bytes = Buffer.from(header + Array.from({ length: 300 }, (_, r) => line(r)).join(''));
    // Parts split inside the two-byte "é" of the header and inside lines.
    const cut = header.indexOf('é') + 1;
    const parts = [bytes.subarray(0, cut), bytes.subarray(cut, 100_003), bytes.subarray(100_003)];
    const got = await collect(csvRows(Readable.from(parts), model, 'label', 1 << 30), wide);
    expect(got.sizes).toEqual([256, 44]);
    expect(Array.from(got.values.subarray(wide * 299, wide * 299 + 12))).toEqual([
      9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0,
    ]);
  });

  it('CSV: a chunk is handed on once its last line has arrived, before the upload ends', async () => {
    let release: () => void = () => undefined;
    const more = new Promise<void>((resolve) => {
      release = resolve;
    });
    const taken: string[] = [];
    async function* upload() {
      yield Buffer.from(`a,b\n${'1,2\n'.repeat(4096)}`);
      await more; // the client stalls
      taken.push('after the stall');
      yield Buffer.from('3,4\n');
    }
    const model = { name: 'm', inputWidth: 2, featureNames: undefined };
    const chunks = csvRows(upload(), model, 'label', 1 << 30);
    const first = await chunks.next();
    expect(taken).toEqual([]);
    expect(first.value?.length).toBe(4096 * 2);
    release();
    const rest = await chunks.next();
    expect(Array.from(rest.value ?? [])).toEqual([3, 4]);
    expect(taken).toEqual(['after the stall']);
    expect((await chunks.next()).done).toBe(true);
  });

  it('count the rows read, those of a chunk still being filled included, while the client stalls', async () => {
    const stall = new Promise<never>(() => undefined);
    const stalled = (part: Buffer) =>
      (async function* () {
        yield part;
        await stall;
      })();
    const width = 2;
    const model = { name: 'm', inputWidth: width, featureNames: undefined };
    const readers = {
      csv: (received: { rows: number }) =>
        csvRows(
          stalled(Buffer.from('a,b\n1,2\n3,4\n5,6\n')),
          model,
          'label',
          1 << 30,
          undefined,
          received,
        ),
      ndjson: (received: { rows: number }) =>
        ndjsonRows(stalled(Buffer.from('[1,2]\n[3,4]\n\n[5,6]\n')), width, 1 << 30, received),
      // Three rows and half of a fourth.
      float32: (received: { rows: number }) =>
        float32Rows(
          stalled(Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6, 7]).buffer)),
          width,
          1 << 30,
          received,
        ),
    };
    for (const [format, read] of Object.entries(readers)) {
      const received = { rows: 0 };
      // Asks for the first chunk, which the stall never completes.
      void read(received).next();
      for (let i = 0; i < 1000 && received.rows < 3; i++)
        await new Promise((resolve) => setImmediate(resolve));
      expect(received.rows, format).toBe(3);
    }
  });
});
