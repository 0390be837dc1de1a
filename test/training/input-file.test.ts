/**
 * The input limit of the CLIs' data files when they are read in parts (the recalibrate CLI's
 * `--data`): a file is refused by its size before a byte is read, and one without a size — a
 * device, a pipe, stdin — by the bytes it gave. /dev/zero held the CLI until V8's "Invalid
 * string length" (an internal error after 1.16 GB of memory), and a FIFO of rows grew its memory
 * without end (the recalibration attacker of 2026-12-04).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { isNormserveError } from '../../src/errors/index.js';
import { inputFileParts, MAX_INPUT_FILE_BYTES, readInputFile } from '../../src/training/index.js';

describe('inputFileParts', () => {
  it.skipIf(!existsSync('/dev/zero'))(
    'refuses a file without a size (/dev/zero) once it has given more than the input limit',
    async () => {
      const parts = await inputFileParts('/dev/zero', 'data file ', 1 << 24);
      let read = 0;
      let error: unknown;
      try {
        for await (const part of parts) read += part.length;
      } catch (e) {
        error = e;
      }
      expect(isNormserveError(error) && error.code).toBe('DATA_INVALID');
      expect((error as Error).message).toBe(
        `cannot read data file /dev/zero: it holds more than ${MAX_INPUT_FILE_BYTES.toLocaleString('en-US')} bytes, over the limit of ${MAX_INPUT_FILE_BYTES.toLocaleString('en-US')} bytes (512 MiB, the longest text Node holds)`,
      );
      // Every byte handed out is within the limit.
      expect(read).toBeLessThanOrEqual(MAX_INPUT_FILE_BYTES);
      expect(read).toBeGreaterThan(MAX_INPUT_FILE_BYTES - (1 << 24));
    },
  );
});

describe('readInputFile', () => {
  it.skipIf(!existsSync('/dev/zero'))(
    'refuses a file without a size (/dev/zero) by the bytes it gave, in the words of a large file',
    async () => {
      let error: unknown;
      try {
        await readInputFile('/dev/zero', 'config file ', 'TRAINING_CONFIG_INVALID');
      } catch (e) {
        error = e;
      }
      expect(isNormserveError(error) && error.code).toBe('TRAINING_CONFIG_INVALID');
      expect((error as Error).message).toMatch(
        /^cannot read config file \/dev\/zero: it holds more than [\d,]+ bytes, over the limit of/,
      );
    },
  );

  it.skipIf(process.platform === 'win32')(
    'reads a pipe whole, its small reads gathered into parts (each byte where it was written)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'normserve-pipe-'));
      const fifo = join(dir, 'rows');
      execFileSync('mkfifo', [fifo]);
      try {
        // 2.5 MiB and 3 bytes in writes of 64 KiB and less: parts of 1 MiB filled across reads.
        const bytes = Buffer.alloc(2.5 * 2 ** 20 + 3);
        for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 16)) & 0xff;
        const writing = (async () => {
          const out = await open(fifo, 'w');
          for (let at = 0; at < bytes.length; at += 40_000)
            await out.write(bytes.subarray(at, Math.min(at + 40_000, bytes.length)));
          await out.close();
        })();
        // A pipe gives at most 64 KiB a read: a part per read held 16 times the bytes and more.
        const allocations = vi.spyOn(Buffer, 'allocUnsafe');
        let read: Buffer;
        let parts: number;
        try {
          read = await readInputFile(fifo, 'data file ');
          parts = allocations.mock.calls.filter(([size]) => size === 2 ** 20).length;
        } finally {
          allocations.mockRestore();
        }
        await writing;
        expect(read.length).toBe(bytes.length);
        expect(read.equals(bytes)).toBe(true);
        expect(parts, 'parts of 1 MiB taken').toBeLessThanOrEqual(
          Math.ceil(bytes.length / 2 ** 20),
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(!existsSync('/proc/self/status'))(
    'reads a file without a size whole (a /proc file says 0 bytes)',
    async () => {
      const text = (await readInputFile('/proc/self/status', 'data file ')).toString('utf8');
      expect(text).toMatch(/^Name:/);
    },
  );
});
