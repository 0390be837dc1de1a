/**
 * The service's row store: rows past the memory budget go to a temporary file and come back in
 * order, in blocks of at most blockRows rows; close() removes the file and its directory. A file
 * the storage fails (fs-faults.mjs) or another process shortens is a catalogue storage error.
 */
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NormserveError } from '../../src/errors/index.js';
import { SpillingRowStore } from '../../src/service/spilling-row-store.js';
import { clearFsFaults, faultHits, injectFsFaults } from '../helpers/fs-faults.mjs';

const dirs: string[] = [];
afterEach(() => {
  clearFsFaults();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const rowsFrom = (first: number, count: number, width: number) =>
  Float32Array.from({ length: count * width }, (_, i) => first * width + i + 0.5);

/** This process's open descriptor of a spill file whose name was removed (Linux's /proc). */
function spillFileDescriptor(): { path: string } | undefined {
  for (const fd of readdirSync('/proc/self/fd')) {
    const path = join('/proc/self/fd', fd);
    const target = (() => {
      try {
        return readlinkSync(path);
      } catch {
        return '';
      }
    })();
    if (/\/normserve-recalibration-\w+\/rows\.f32 \(deleted\)$/.test(target)) return { path };
  }
  return undefined;
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

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
    // The spill file is open but has no name any more: a process killed now leaves nothing (h251).
    expect(readdirSync(parent)).toHaveLength(0);
    expect(spillFileDescriptor()).toBeDefined();
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

describe('SpillingRowStore on storage that fails', () => {
  /** A store spilling every row (a budget of 0) under a fresh parent directory. */
  function spillingStore(width: number): { store: SpillingRowStore; parent: string } {
    const parent = mkdtempSync(join(tmpdir(), 'normserve-spill-fault-'));
    dirs.push(parent);
    return { store: new SpillingRowStore(width, 4, 0, parent), parent };
  }

  /** What `promise` rejected with, which must be a NormserveError. */
  async function rejection(promise: Promise<unknown>): Promise<NormserveError> {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NormserveError);
    return error as NormserveError;
  }

  const drain = async (store: SpillingRowStore) => {
    for await (const _ of store.chunks());
  };

  it('a full device while writing the spill file: STORAGE_FULL naming the file, the errno and what to do', async () => {
    const { store, parent } = spillingStore(2);
    // Injected before the file is opened (the faults follow the handles opened after), failing
    // the second write: the first chunk is on disk.
    injectFsFaults([{ op: 'write', suffix: 'rows.f32', code: 'ENOSPC', skip: 1 }]);
    await store.append(rowsFrom(0, 3, 2));
    const error = await rejection(store.append(rowsFrom(3, 3, 2)));
    expect(faultHits()).toEqual([1]);
    expect(error.code).toBe('STORAGE_FULL');
    expect(error.status).toBe(507);
    expect(error.extra).toEqual({ errno: 'ENOSPC' });
    expect(error.message).toMatch(
      new RegExp(
        `^cannot keep the recalibration’s rows in its temporary spill file: no space left on the device \\(ENOSPC\\) writing ${escapeRegExp(parent)}/normserve-recalibration-\\w+/rows\\.f32; free space in ${escapeRegExp(parent)}, set TMPDIR to a directory with room, or raise RECALIBRATION_MEMORY_BYTES to keep more of the rows in memory$`,
      ),
    );
    await store.close();
    expect(readdirSync(parent)).toEqual([]);
  });

  it('a failing device while creating or reading the spill file: STORAGE_UNAVAILABLE', async () => {
    const created = spillingStore(2);
    injectFsFaults([{ op: 'open', suffix: 'rows.f32', code: 'EIO' }]);
    const refused = await rejection(created.store.append(rowsFrom(0, 2, 2)));
    expect(refused.code).toBe('STORAGE_UNAVAILABLE');
    expect(refused.message).toMatch(
      /^cannot create the recalibration’s temporary spill file: input\/output error \(EIO\) creating \/.*\/rows\.f32; set TMPDIR to a directory on a working, writable file system, or raise RECALIBRATION_MEMORY_BYTES/,
    );
    await created.store.close();

    clearFsFaults();
    const { store } = spillingStore(2);
    await store.append(rowsFrom(0, 9, 2));
    injectFsFaults([{ op: 'read', suffix: 'rows.f32', code: 'EIO', skip: 1 }]);
    const error = await rejection(drain(store));
    expect(faultHits()).toEqual([1]);
    expect(error.code).toBe('STORAGE_UNAVAILABLE');
    expect(error.status).toBe(503);
    expect(error.extra).toEqual({ errno: 'EIO' });
    expect(error.message).toMatch(
      /^cannot read the recalibration’s rows back from its temporary spill file: input\/output error \(EIO\) reading \/.*\/rows\.f32; /,
    );
    await store.close();
  });

  it('no file descriptor free while creating the spill file (EMFILE): STORAGE_UNAVAILABLE saying so, not TMPDIR', async () => {
    const created = spillingStore(2);
    injectFsFaults([{ op: 'open', suffix: 'rows.f32', code: 'EMFILE' }]);
    const refused = await rejection(created.store.append(rowsFrom(0, 2, 2)));
    expect(refused.code).toBe('STORAGE_UNAVAILABLE');
    expect(refused.message).toMatch(
      /^cannot create the recalibration’s temporary spill file: too many open files \(EMFILE\) creating \/.*\/rows\.f32; retry once fewer files are open: the process or the machine had no file descriptor free \(raise ulimit -n, or lower MAX_CONNECTIONS\)$/,
    );
    await created.store.close();
    clearFsFaults();
  });

  it('a spill file another process shortened: STORAGE_UNAVAILABLE saying where it ended', async () => {
    const { store } = spillingStore(2);
    await store.append(rowsFrom(0, 9, 2));
    // Its name is gone: shortened through this process's descriptor of it.
    const descriptor = spillFileDescriptor()!;
    const file = readlinkSync(descriptor.path).replace(/ \(deleted\)$/, '');
    truncateSync(descriptor.path, 5 * 2 * 4 + 3); // the second block of 4 rows ends within row 5
    const error = await rejection(drain(store));
    expect(error.code).toBe('STORAGE_UNAVAILABLE');
    expect(error.message).toBe(
      `cannot read the recalibration’s rows back from its temporary spill file: ${file} (its name removed, the file held open) ends at byte 43 of the 72 written, so another process shortened it through this process's descriptor of it; raise RECALIBRATION_MEMORY_BYTES to keep more of the rows in memory`,
    );
    await store.close();
  });
});
