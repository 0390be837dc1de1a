/**
 * recalibrate's data file and predict's CSV input are read as they arrive, not whole: a bad row is
 * refused once its line has been read, while the rest of the file has not (review35: a 2 M-row
 * CSV, read whole as text, a table of strings and number[][], ran the recalibrate CLI out of
 * heap). The file here is a named pipe whose write end the test keeps open: a reader that waits
 * for the end of the file before looking at a row never answers (the test then fails on its
 * timeout), one that reads as the rows come answers at once, naming the line.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { makeRepository } from '../helpers/app.js';
import { type Entry, nodeArgs, ROOT } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

const repository = makeRepository(['digits']);
const dir = makeTempDir('streamed-input');
const open: { child?: ChildProcess | undefined; fd?: number | undefined } = {};

afterEach(() => {
  open.child?.kill('SIGKILL');
  if (open.fd !== undefined) closeSync(open.fd);
  open.child = undefined;
  open.fd = undefined;
});
afterAll(() => {
  rmSync(repository, { recursive: true, force: true });
  removeTempDirs();
});

/**
 * Runs `script` on a named pipe that holds `text` and stays open for writing (opened read-write
 * here, which never blocks on Linux, so the child's open does not wait for a writer either).
 */
async function runOnOpenPipe(script: Entry, args: (pipe: string) => string[], text: string) {
  const pipe = join(dir, `${script.split('/').pop()}-rows.csv`);
  execFileSync('mkfifo', [pipe]);
  open.fd = openSync(pipe, constants.O_RDWR);
  writeSync(open.fd, text);
  const child = spawn(process.execPath, [...nodeArgs(script), ...args(pipe)], { cwd: ROOT });
  open.child = child;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { pipe, status, stdout, stderr };
}

const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
const good = Array.from({ length: 64 }, (_, i) => i % 17).join(',');
const bad = Array.from({ length: 64 }, (_, i) => (i === 5 ? 'x' : i % 17)).join(',');
const text = `${header}\n${good}\n${good}\n${bad}\n${good}\n`;

describe.skipIf(process.platform === 'win32')('CLI inputs read as they arrive', () => {
  it('recalibrate refuses a bad row before its data file has ended', {
    timeout: 120_000,
  }, async () => {
    const r = await runOnOpenPipe(
      'src/cli/recalibrate.ts',
      (pipe) => ['--model', join(repository, 'digits'), '--data', pipe],
      text,
    );
    expect(r.stderr).toBe(
      `recalibrate: ${r.pipe}: line 4, column "p5": "x" is not a finite number\n`,
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
  });

  it('predict refuses a bad row before its CSV input has ended', { timeout: 120_000 }, async () => {
    const r = await runOnOpenPipe(
      'src/cli/predict.ts',
      (pipe) => ['--model', join(repository, 'digits'), '--input', pipe],
      text,
    );
    expect(r.stderr).toBe(`predict: ${r.pipe}: line 4, column "p5": "x" is not a finite number\n`);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
  });
});
