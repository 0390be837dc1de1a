/**
 * The row blocks a server keeps from one recalibration for the next (RowBlockPool as
 * MemoryRowStore's block source): reused blocks hold the last recalibration's values, so a store
 * must read back exactly the rows it was given; the pool keeps at most its budget and lets go of
 * everything once idle.
 */
import { describe, expect, it } from 'vitest';
import { MemoryRowStore } from '../../src/recalibration/index.js';
import { RowBlockPool } from '../../src/service/row-block-pool.js';
import { SpillingRowStore } from '../../src/service/spilling-row-store.js';

const rowsFrom = (first: number, count: number, width: number) =>
  Float32Array.from({ length: count * width }, (_, i) => first * width + i + 0.5);

async function readBack(store: { chunks(): AsyncIterable<{ data: Float32Array }> }) {
  const read: number[] = [];
  for await (const { data } of store.chunks()) read.push(...data);
  return read;
}

describe('RowBlockPool', () => {
  it('hands back the blocks it was given, up to its budget, and nothing beyond them', () => {
    const pool = new RowBlockPool(3 * 4 * 8);
    const given: Float32Array[] = [new Float32Array(8), new Float32Array(8), new Float32Array(8)];
    given.push(new Float32Array(8)); // one block past the budget: not kept
    pool.give(given);
    expect(pool.bytes).toBe(96);
    const taken = [pool.take(8), pool.take(8), pool.take(8)];
    expect(taken.every((b) => b !== undefined && given.includes(b))).toBe(true);
    expect(pool.take(8)).toBeUndefined();
    expect(pool.bytes).toBe(0);
    pool.give([new Float32Array(8)]);
    expect(pool.take(5)).toBeUndefined(); // another length
    expect(pool.bytes).toBe(32);
    pool.clear();
  });

  it('drops every block once idle', async () => {
    const pool = new RowBlockPool(1024, 20);
    pool.give([new Float32Array(16)]);
    expect(pool.bytes).toBe(64);
    for (let i = 0; i < 500 && pool.bytes > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(pool.bytes).toBe(0);
  });

  it('a store on reused blocks reads back its own rows, never the last store’s', async () => {
    const width = 3;
    const pool = new RowBlockPool(1 << 20);
    const first = new MemoryRowStore(width, 4, pool);
    first.append(Float32Array.from({ length: 11 * width }, () => Number.NaN));
    first.close();
    expect(pool.bytes).toBe(3 * 4 * width * 4); // two full blocks and the open one, whole-sized
    const second = new MemoryRowStore(width, 4, pool);
    let received = 0;
    for (const n of [1, 2, 6, 1]) {
      const chunk = rowsFrom(received, n, width);
      second.append(chunk);
      chunk.fill(-1);
      received += n;
    }
    expect(await readBack(second)).toEqual([...rowsFrom(0, 10, width)]);
    second.close();
  });

  it('serves the in-memory part of a spilling store', async () => {
    const width = 2;
    const pool = new RowBlockPool(1 << 20);
    const dirty = new Float32Array(4 * width);
    dirty.fill(Number.POSITIVE_INFINITY);
    pool.give([dirty]);
    const store = new SpillingRowStore(width, 4, 1 << 20, '/nonexistent', undefined, pool);
    await store.append(rowsFrom(0, 3, width));
    expect(await readBack(store)).toEqual([...rowsFrom(0, 3, width)]);
    await store.close();
    expect(pool.bytes).toBe(4 * width * 4);
  });

  it('a few rows of a wide model take no whole block from an empty pool (the budget holds)', async () => {
    // 3×224×224 values a row: a whole 4,096-row block would be 2.3 GiB, far over the 64 MiB budget.
    const width = 3 * 224 * 224;
    const pool = new RowBlockPool(64 << 20);
    const before = process.memoryUsage().arrayBuffers;
    const store = new SpillingRowStore(width, 4096, 64 << 20, '/nonexistent', undefined, pool);
    await store.append(rowsFrom(0, 2, width));
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 << 20);
    let read = 0;
    for await (const { data } of store.chunks()) {
      expect(data[0]).toBe(read === 0 ? 0.5 : width + 0.5);
      read += data.length;
    }
    expect(read).toBe(2 * width);
    await store.close();
    expect(pool.bytes).toBe(0); // a part-grown block is not whole: not kept
  });
});
