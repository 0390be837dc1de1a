/**
 * A recalibration interrupted from its terminal (Ctrl-C: SIGINT; SIGTERM) while it holds its
 * model's lock: it stops, releases the lock and publishes nothing, says so, and ends by the signal
 * (a shell sees 130 or 143). It used to die holding the lock, which only the next run's staleness
 * check removed. The rows come through a FIFO kept open, so the run is certainly mid-read, lock
 * held, when the signal comes (a file read whole might be published first).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
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
        // Opening for writing waits for the reader (the run); kept open: no end of data yet.
        const writer = await open(fifo, 'w');
        try {
          await writer.write(`${header}\n${rows.map((r) => r.join(',')).join('\n')}\n`);
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
