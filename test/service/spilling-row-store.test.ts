/**
 * The service's row store: rows past the memory budget go to a temporary file and come back in
 * order, in blocks of at most blockRows rows; close() removes the file and its directory.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpillingRowStore } from '../../src/service/spilling-row-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const rowsFrom = (first: number, count: number, width: number) =>
  Float32Array.from({ length: count * width }, (_, i) => first * width + i + 0.5);

describe('SpillingRowStore', () => {
  it('keeps the budget in memory, spills the rest and reads every row back in order', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'normserve-spill-test-'));
    dirs.push(parent);
    const width = 3;
    // 10 rows of 3 float32 values fit in memory (120 bytes), blocks of 4 rows.
    const store = new SpillingRowStore(width, 4, 10 * width * 4, parent);
    let received = 0;
    for (const n of [1, 6, 2, 9, 5]) {
      const chunk = rowsFrom(received, n, width);
      await store.append(chunk);
      chunk.fill(-1); // the caller reuses its chunk: the store must have copied it
      received += n;
    }
    expect(store.rows).toBe(23);
    expect(readdirSync(parent)).toHaveLength(1);
    const read: number[] = [];
    for (let pass = 0; pass < 2; pass++) {
      read.length = 0;
      for await (const { data, rows } of store.chunks()) {
        expect(rows).toBeLessThanOrEqual(4);
        expect(data.length).toBe(rows * width);
        read.push(...data);
      }
      expect(read).toEqual([...rowsFrom(0, 23, width)]);
    }
    await store.close();
    expect(readdirSync(parent)).toHaveLength(0);
    await store.close();
  });

  it('never touches the disk within the budget', async () => {
    const parent = join(tmpdir(), 'normserve-spill-never-created');
    const store = new SpillingRowStore(2, 8, 1024, parent);
    await store.append(rowsFrom(0, 5, 2));
    const read: number[] = [];
    for await (const { data } of store.chunks()) read.push(...data);
    expect(read).toEqual([...rowsFrom(0, 5, 2)]);
    await store.close();
    expect(existsSync(parent)).toBe(false);
  });

  it('keeps the rows in memory, and says so once, where no temporary directory can be made', async () => {
    const parent = join(tmpdir(), 'normserve-spill-missing', 'deeper');
    const told: string[] = [];
    const store = new SpillingRowStore(2, 4, 0, parent, (e) => {
      told.push((e as NodeJS.ErrnoException).code ?? '');
    });
    for (const [first, n] of [
      [0, 3],
      [3, 6],
    ] as const) {
      const chunk = rowsFrom(first, n, 2);
      await store.append(chunk);
      chunk.fill(-1); // copied, as in memory within a budget
    }
    expect(told).toEqual(['ENOENT']);
    expect(store.rows).toBe(9);
    const read: number[] = [];
    for await (const { data, rows } of store.chunks()) {
      expect(rows).toBeLessThanOrEqual(4);
      read.push(...data);
    }
    expect(read).toEqual([...rowsFrom(0, 9, 2)]);
    await store.close();
    expect(existsSync(parent)).toBe(false);
  });
});
