/**
 * A CLI whose stderr is closed by its reader (`train … 2>&1 | head -3`, to peek at the first
 * epochs) runs to its end: the progress it writes after that is dropped (cli-errors.ts's
 * runCli). An uncaught EPIPE ended training with exit 1, no message and no model.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { nodeArgs, ROOT } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

it('train publishes its model when stderr is closed before its first progress line', async () => {
  const out = join(makeTempDir('closed-stderr'), 'models');
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs('src/cli/train.ts'),
      '--data',
      join(ROOT, 'data/iris/iris.csv'),
      '--epochs',
      '5',
      '--no-progress',
      '--out',
      out,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // The reading end closed before the child writes anything: every stderr write fails (EPIPE).
  child.stderr.destroy();
  let stdout = '';
  child.stdout.on('data', (b: Buffer) => {
    stdout += b.toString();
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (c, s) => resolve([c, s])),
  );
  expect({ code, signal }).toEqual({ code: 0, signal: null });
  expect(stdout).toMatch(/^wrote \S+ \(version 1\)/m);
  expect(existsSync(join(out, 'iris', '1', 'model.safetensors'))).toBe(true);
}, 120_000);
