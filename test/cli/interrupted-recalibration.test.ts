/**
 * A recalibration interrupted from its terminal (Ctrl-C: SIGINT; SIGTERM) while it holds its
 * model's lock: it stops, releases the lock and publishes nothing, says so, and ends by the signal
 * (a shell sees 130 or 143). It used to die holding the lock, which only the next run's staleness
 * check removed. The rows come through a FIFO kept open, so the run is certainly mid-read, lock
 * held, when the signal comes (a file read whole might be published first).
 */
import { spawn, spawnSync } from 'node:child_process';
import { constants, existsSync, readdirSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyBundledModel } from '../helpers/bundled-models.js';
import { digitsTestRows, nightShift } from '../helpers/digits.js';
import { nodeArgs, ROOT } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const LOCK_FILE = '.recalibration.lock';
const header = Array.from({ length: 64 }, (_, i) => `pixel_${i}`).join(',');
const rows = nightShift(digitsTestRows().x.slice(0, 50));

/** Polls `check` every 50 ms, failing after `boundMs` (generous: a loaded machine is slow). */
async function until(check: () => boolean, boundMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > boundMs) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Opens `fifo` for writing once a reader has it open (ENXIO until then), checking `alive` between tries. */
async function openWhenRead(fifo: string, alive: () => void) {
  for (const start = Date.now(); ; ) {
    alive();
    try {
      return await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO' || Date.now() - start > 60_000) throw e;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Writes `text` whole to a non-blocking `writer`, waiting while the pipe is full (EAGAIN). */
async function writeAll(writer: FileHandle, text: string): Promise<void> {
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; ) {
    try {
      at += (await writer.write(bytes, at)).bytesWritten;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describe('recalibrate interrupted while it holds the lock', () => {
  const hasMkfifo = spawnSync('mkfifo', ['--version']).status === 0;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it.skipIf(!hasMkfifo)(
      `by ${signal}: releases the lock, publishes nothing, says so, ends by the signal`,
      async () => {
        const repository = makeTempDir('interrupted-recalibration');
        copyBundledModel('digits', repository);
        const model = join(repository, 'digits');
        const before = readdirSync(model).sort();
        const fifo = join(repository, 'rows.csv');
        expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
        const child = spawn(
          process.execPath,
          [...nodeArgs('src/cli/recalibrate.ts'), '--model', model, '--data', fifo],
          { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stderr = '';
        child.stderr.on('data', (b: Buffer) => {
          stderr += b.toString();
        });
        const ended = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
          child.on('close', (c, s) => resolve([c, s])),
        );
        let exited = false;
        void ended.then(() => {
          exited = true;
        });
        // Opened for writing once the run has it open for reading (without O_NONBLOCK the open
        // waits for a reader, for ever if the run died first: the test then hung to its timeout);
        // kept open: no end of data yet.
        const writer = await openWhenRead(fifo, () => {
          if (exited) throw new Error(`recalibrate ended before reading its rows:\n${stderr}`);
        });
        try {
          await writeAll(writer, `${header}\n${rows.map((r) => r.join(',')).join('\n')}\n`);
          await until(() => existsSync(join(model, LOCK_FILE)));
          child.kill(signal);
          const [code, endedBy] = await ended;
          expect({ code, signal: endedBy }).toEqual({ code: null, signal });
        } finally {
          await writer.close();
        }
        expect(stderr).toBe(
          `recalibrate: interrupted (${signal}) before publishing; nothing was written, and the lock on ${model} is released\n`,
        );
        expect(readdirSync(model).sort()).toEqual(before);
      },
      120_000,
    );
  }
});
