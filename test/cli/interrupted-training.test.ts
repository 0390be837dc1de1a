/**
 * A training run that ends without publishing — interrupted (Ctrl-C: SIGINT; SIGTERM) or failed
 * (diverged) — says "nothing was written", and it is true: the directories the run created for
 * its output (`--out`, the model's) are removed, one that was there before is kept. On a terminal
 * the progress bar is stopped first (cursor shown, line wrapping back on); it hid the cursor and
 * turned wrapping off for good. The process then ends by its signal (a shell sees 130 or 143).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeArgs, ROOT, runEntry, spawnWithFsFaults } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const DIGITS = join(ROOT, 'data/digits/digits.csv');
const LONG_RUN = ['--data', DIGITS, '--label-column', 'label', '--epochs', '100000'];

/** Resolves once `text` has appeared in what `stream` gave so far; the text so far after that. */
function waitFor(stream: NodeJS.ReadableStream, text: string): Promise<void> {
  let seen = '';
  return new Promise((resolve) => {
    const onData = (b: Buffer) => {
      seen += b.toString();
      if (seen.includes(text)) {
        stream.off('data', onData);
        resolve();
      }
    };
    stream.on('data', onData);
  });
}

describe('train interrupted while training', () => {
  // SIGHUP: the terminal the run was started from closed (h248).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    it(`by ${signal}: says so, removes the --out directories it created, ends by the signal`, async () => {
      const out = join(makeTempDir('interrupted-training'), 'new', 'models');
      const child = spawn(
        process.execPath,
        [...nodeArgs('src/cli/train.ts'), ...LONG_RUN, '--no-progress', '--out', out],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      const ended = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
        child.on('close', (c, s) => resolve([c, s])),
      );
      await waitFor(child.stderr, 'epoch 1/100000');
      expect(existsSync(out)).toBe(true);
      child.kill(signal);
      const [code, ended_by] = await ended;
      expect({ code, signal: ended_by }).toEqual({ code: null, signal });
      expect(stderr).toMatch(
        new RegExp(`\\ntrain: interrupted \\(${signal}\\) while training; nothing was written\\n$`),
      );
      expect(existsSync(join(out, '..'))).toBe(false);
    }, 120_000);
  }

  const hasScript = spawnSync('script', ['--version']).status === 0;
  // Ctrl-C typed on a terminal (util-linux `script` gives the run one): the line discipline sends
  // SIGINT to the run, whose bar had hidden the cursor (ESC[?25l) and turned wrapping off (ESC[?7l).
  it.skipIf(!hasScript)(
    'on a terminal: the bar shows the cursor and wraps lines again',
    async () => {
      const out = join(makeTempDir('interrupted-tty'), 'models');
      const command = [process.execPath, ...nodeArgs('src/cli/train.ts'), ...LONG_RUN, '--out', out]
        .map((a) => `'${a}'`)
        .join(' ');
      const child = spawn('script', ['-qfec', `exec ${command}`, '/dev/null'], {
        cwd: ROOT,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let tty = '';
      child.stdout.on('data', (b: Buffer) => {
        tty += b.toString('latin1');
      });
      const ended = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      // The bar is drawn in its second epoch (the first ends with the bar stopped).
      await waitFor(child.stdout, 'epoch 2/100000 |');
      child.stdin.write('\x03');
      expect(await ended).toBe(130);
      const last = (code: string) => tty.lastIndexOf(code);
      expect(last('\x1b[?25h')).toBeGreaterThan(last('\x1b[?25l'));
      expect(last('\x1b[?7h')).toBeGreaterThan(last('\x1b[?7l'));
      expect(tty).toMatch(/train: interrupted \(SIGINT\) while training; nothing was written\r\n$/);
      expect(existsSync(out)).toBe(false);
    },
    120_000,
  );
});

describe('train that fails (diverges)', () => {
  const diverging = ['--data', join(ROOT, 'data/iris/iris.csv'), '--optimizer', 'sgd'];
  it('removes the --out directories it created', () => {
    const out = join(makeTempDir('diverged'), 'a', 'b');
    const result = runEntry('src/cli/train.ts', [...diverging, '--lr', '1e30', '--out', out]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/nothing was written/);
    expect(existsSync(join(out, '..'))).toBe(false);
  });

  it('keeps an --out directory that was there before, empty as it was', () => {
    const out = join(makeTempDir('diverged-existing'), 'models');
    mkdirSync(out);
    const result = runEntry('src/cli/train.ts', [...diverging, '--lr', '1e30', '--out', out]);
    expect(result.status).toBe(1);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('train interrupted while publishing', () => {
  // h248: a signal during the publish ended the run without a word: published or not, unsaid.
  // The publish is held at a file operation (test/helpers/fs-faults.mjs, `delayMs`) before or
  // after its rename, and the signal sent while it waits there.
  const SHORT_RUN = ['--data', DIGITS, '--label-column', 'label', '--epochs', '1', '--no-progress'];
  for (const [when, fault, ready, said, versions] of [
    [
      'before its version is in place',
      { op: 'rename', path: '.tmp-', delayMs: 60_000 },
      (dir: string) => readdirSync(dir).some((n) => n.startsWith('.tmp-')),
      /\ntrain: interrupted \(SIGHUP\) while publishing; nothing was written\n$/,
      [],
    ],
    [
      'after its version is in place',
      { op: 'fsync', suffix: '/digits', delayMs: 60_000 },
      (dir: string) => readdirSync(dir).includes('1'),
      /\ntrain: interrupted \(SIGHUP\) while publishing, after \S+\/digits\/1 was in place: version 1 is published\n$/,
      ['1'],
    ],
  ] as const) {
    it(`${when}: says which, and ends by the signal`, async () => {
      const out = join(makeTempDir('interrupted-publish-train'), 'models');
      const { child, ended } = spawnWithFsFaults(
        'src/cli/train.ts',
        [...SHORT_RUN, '--name', 'digits', '--out', out],
        [fault],
      );
      let stderr = '';
      child.stderr!.on('data', (b: Buffer) => {
        stderr += b.toString();
      });
      const modelDir = join(out, 'digits');
      for (let i = 0; i < 1200 && !(existsSync(modelDir) && ready(modelDir)); i++)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(ready(modelDir), stderr).toBe(true);
      child.kill('SIGHUP');
      const [code, endedBy] = await ended;
      expect({ code, signal: endedBy }).toEqual({ code: null, signal: 'SIGHUP' });
      expect(stderr).toMatch(said);
      if (versions.length === 0) {
        // Nothing written: the directories the run made are gone again.
        expect(existsSync(out)).toBe(false);
      } else expect(readdirSync(modelDir)).toEqual(versions);
    }, 120_000);
  }
});
