/**
 * `npm run export:onnx` as a user runs it: the file it writes is the service's export byte for
 * byte (the HTTP route serves the same), onnxruntime runs it to normserve's outputs, and failures
 * exit 1 with one stderr line and leave no file behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { exportModelOnnx, ModelRegistry, openModelDirectory } from '../../src/service/index.js';
import {
  bundledVersionDir,
  copyBundledModel,
  copyBundledRepository,
} from '../helpers/bundled-models.js';
import { expectClose } from '../helpers/compare.js';
import { digitsTestRows } from '../helpers/digits.js';
import { nodeArgs, spawnWithFsFaults } from '../helpers/entries.js';
import { FS_FAULTS_MODULE } from '../helpers/fs-faults.mjs';
import { onnxSession, runOnnx } from '../helpers/onnx-runtime.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';

/** The bundled digits version (not models/digits: `npm run train` may have added versions). */
const DIGITS = bundledVersionDir('digits');

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/** exportCli without blocking the test's own event loop (a FIFO's reader runs in this process). */
function exportCliAsync(
  args: readonly string[],
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs('src/cli/export-onnx.ts'), ...args], {
      cwd: ROOT,
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.on('close', (status) => resolve({ status, stderr }));
  });
}

function exportCli(args: readonly string[]) {
  const result = spawnSync(process.execPath, [...nodeArgs('src/cli/export-onnx.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const out = makeTempDir('export-onnx-cli');
afterAll(() => removeTempDirs());

describe('npm run export:onnx', () => {
  it('writes the service export of the active version; onnxruntime runs it to the predict logits', async () => {
    const file = join(out, 'digits.onnx');
    // A model directory (its active version) in a repository of its own, and the service's export.
    const repository = copyBundledRepository(makeTempDir('export-onnx-repository'));
    const result = exportCli(['--model', join(repository, 'digits'), '--out', file]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `wrote ${file} (${readFileSync(file).length} bytes): digits version 1, ONNX opset 17, input "input" [batch, 64], output "logits" [batch, 10]\n`,
    );
    const registry = new ModelRegistry(repository, { maxBatchSize: 4096 });
    await registry.refreshModel('digits');
    const expected = exportModelOnnx(registry, { model: 'digits', producerVersion: VERSION });
    expect(Buffer.compare(readFileSync(file), Buffer.from(expected.bytes))).toBe(0);

    const rows = digitsTestRows().x;
    const prediction = (await openModelDirectory(DIGITS)).predict(rows);
    const onnx = await runOnnx(
      await onnxSession(readFileSync(file)),
      Float32Array.from(rows.flat()),
      rows.length,
      64,
    );
    expectClose(onnx.logits!, prediction.outputs, OUTPUT_ATOL, 'logits');
  });

  it('--probabilities adds the softmax output', async () => {
    const file = join(out, 'with-probabilities.onnx');
    const result = exportCli(['--model', DIGITS, '--out', file, '--probabilities']);
    expect(result.status, result.stderr).toBe(0);
    expect((await onnxSession(readFileSync(file))).outputNames).toEqual([
      'logits',
      'probabilities',
    ]);
  });

  it('makes a missing output directory, as train and report do', () => {
    const file = join(out, 'made', 'for', 'it.onnx');
    const result = exportCli(['--model', DIGITS, '--out', file]);
    expect(result.status, result.stderr).toBe(0);
    expect(readFileSync(file).byteLength).toBeGreaterThan(0);
  });

  it('fails with one line and writes nothing: unknown model, a file in the way, missing flag', () => {
    const blocker = join(out, 'a-file');
    writeFileSync(blocker, 'not a directory');
    const before = readdirSync(out).sort();
    const cases: [string[], RegExp][] = [
      [['--model', join(out, 'nope'), '--out', join(out, 'x.onnx')], /^export-onnx: .*nope/],
      // The model is opened first: no directory is made for a model that is not there.
      [['--model', join(out, 'nope'), '--out', join(out, 'nope-dir', 'x.onnx')], /nope/],
      [
        ['--model', DIGITS, '--out', join(blocker, 'x.onnx')],
        /^export-onnx: --out .*a-file: cannot write there: a file is in the way/,
      ],
      [['--model', DIGITS], /^export-onnx: required option '--out <file>' not specified$/],
    ];
    for (const [args, message] of cases) {
      const result = exportCli(args);
      expect(result.status, args.join(' ')).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(message);
    }
    expect(readdirSync(out).sort()).toEqual(before);
    expect(existsSync(join(out, 'x.onnx'))).toBe(false);
  });

  it('--probabilities of a regression model is refused naming the flag', () => {
    // h248: the refusal named the route's query parameter, `probabilities:`.
    const repository = join(out, 'regression-repo');
    const trained = spawnSync(
      process.execPath,
      [
        ...nodeArgs('src/cli/train.ts'),
        ...['--data', join(ROOT, 'data/iris/iris.csv'), '--name', 'petals'],
        ...['--task', 'regression', '--label-column', 'petal_width', '--epochs', '1'],
        ...['--no-progress', '--out', repository],
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 120_000 },
    );
    expect(trained.status, trained.stderr).toBe(0);
    const result = exportCli([
      ...['--model', join(repository, 'petals'), '--out', join(out, 'petals.onnx')],
      '--probabilities',
    ]);
    expect(result.stderr).toBe(
      'export-onnx: --probabilities: only classification models have probabilities; "petals" is a regression model\n',
    );
    expect(result.status).toBe(1);
    expect(existsSync(join(out, 'petals.onnx'))).toBe(false);
  });

  it("refuses an --out inside a model directory of the repository: the versions' files stay as they were", () => {
    // review60: --out <model>/1/model.safetensors replaced the weights with the ONNX file; the
    // review of 2026-12-04 did the same to a sibling model's weights, through a link too.
    const repository = makeTempDir('export-onnx-inside');
    copyBundledModel('digits', repository);
    copyBundledModel('digits-cnn', repository);
    const weights = join(repository, 'digits', '1', 'model.safetensors');
    const siblingWeights = join(repository, 'digits-cnn', '1', 'model.safetensors');
    const before = readFileSync(weights);
    const siblingBefore = readFileSync(siblingWeights);
    const link = join(out, 'sibling-weights.onnx');
    symlinkSync(siblingWeights, link);
    // A link to a file not there yet, in a sibling's directory: an open would create it there.
    const danglingTarget = join(repository, 'digits-cnn', 'active-version.json');
    const dangling = join(out, 'sibling-record.onnx');
    symlinkSync(danglingTarget, dangling);
    // A relative link reached through /proc/self/root: an ordinary link, followed as such.
    const relativeLink = join(out, 'relative-weights.onnx');
    symlinkSync(relative(out, siblingWeights), relativeLink);
    const throughProc = `/proc/self/root${relativeLink}`;
    for (const [model, target, holder] of [
      [join(repository, 'digits'), weights, 'digits'],
      [join(repository, 'digits', '1'), join(repository, 'digits', 'digits.onnx'), 'digits'],
      [join(repository, 'digits'), siblingWeights, 'digits-cnn'],
      [join(repository, 'digits'), join(repository, 'digits-cnn', 'x.onnx'), 'digits-cnn'],
      [join(repository, 'digits'), link, 'digits-cnn'],
      [join(repository, 'digits'), dangling, 'digits-cnn'],
      // A directory that is no model yet: the server would read it as one.
      [join(repository, 'digits'), join(repository, 'exports', 'digits.onnx'), 'exports'],
    ] as const) {
      const result = exportCli(['--model', model, '--out', target]);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(
        `export-onnx: --out ${target}: inside ${join(repository, holder)}, a directory of the model repository, which the server reads as a model's; write the ONNX file elsewhere\n`,
      );
    }
    expect(existsSync(join(repository, 'exports'))).toBe(false);
    if (existsSync('/proc/self/root')) {
      const viaProc = exportCli(['--model', join(repository, 'digits'), '--out', throughProc]);
      expect(viaProc.status).toBe(1);
      expect(viaProc.stderr).toContain(`inside ${join(repository, 'digits-cnn')}, a directory`);
    }
    expect(readFileSync(weights).equals(before)).toBe(true);
    expect(readFileSync(siblingWeights).equals(siblingBefore)).toBe(true);
    expect(readdirSync(join(repository, 'digits')).sort()).toEqual(['1']);
    expect(readdirSync(join(repository, 'digits-cnn')).sort()).toEqual(['1']);
    expect(existsSync(danglingTarget)).toBe(false);
    // Beside the models, in the repository's own directory, is not a model's file.
    const beside = join(repository, 'digits.onnx');
    expect(exportCli(['--model', join(repository, 'digits'), '--out', beside]).status).toBe(0);
  });

  it('writes through a link, and into a pipe, as onnx.save does, instead of replacing them with a file', async () => {
    const expected = exportCli(['--model', DIGITS, '--out', join(out, 'plain.onnx')]);
    expect(expected.status, expected.stderr).toBe(0);
    const bytes = readFileSync(join(out, 'plain.onnx'));
    // A link to a file: the file it names is replaced, the link stays a link.
    const file = join(out, 'real.onnx');
    writeFileSync(file, 'old');
    const link = join(out, 'current.onnx');
    symlinkSync(file, link);
    expect(exportCli(['--model', DIGITS, '--out', link]).status).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(file).equals(bytes)).toBe(true);
    // A link to nothing yet: the file it names is made.
    const later = join(out, 'later.onnx');
    const dangling = join(out, 'dangling.onnx');
    symlinkSync(later, dangling);
    expect(exportCli(['--model', DIGITS, '--out', dangling]).status).toBe(0);
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
    expect(readFileSync(later).equals(bytes)).toBe(true);
    // A FIFO: the bytes go to its reader (`--out /dev/stdout | …` alike); it stays a FIFO.
    const fifo = join(out, 'pipe.onnx');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const reader = spawn('cat', [fifo]);
    const chunks: Buffer[] = [];
    reader.stdout.on('data', (c: Buffer) => chunks.push(c));
    const readerDone = new Promise((resolve) => reader.on('close', resolve));
    const viaFifo = await exportCliAsync(['--model', DIGITS, '--out', fifo]);
    await readerDone;
    expect(viaFifo.status, viaFifo.stderr).toBe(0);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    // /dev/stdout redirected to a file: written through the descriptor, the file not replaced
    // (a rename gave it a new inode and needed its directory writable).
    const redirected = join(out, 'redirected.onnx');
    writeFileSync(redirected, 'earlier output');
    const inode = statSync(redirected).ino;
    const fd = openSync(redirected, 'a');
    const viaStdout = spawnSync(
      process.execPath,
      [...nodeArgs('src/cli/export-onnx.ts'), '--model', DIGITS, '--out', '/dev/stdout'],
      { cwd: ROOT, stdio: ['ignore', fd, 'pipe'], timeout: 60_000 },
    );
    closeSync(fd);
    expect(viaStdout.status, String(viaStdout.stderr)).toBe(0);
    expect(statSync(redirected).ino).toBe(inode);
    expect(readFileSync(redirected).equals(bytes)).toBe(true);
    // /dev/fd/1 into a shell's pipe (`--out /dev/fd/1 | …`): written through the descriptor too.
    const piped = join(out, 'piped.onnx');
    const viaFd = spawnSync(
      'sh',
      [
        '-c',
        '"$0" "$@" | cat > "$PIPED"',
        process.execPath,
        ...nodeArgs('src/cli/export-onnx.ts'),
        '--model',
        DIGITS,
        '--out',
        '/dev/fd/1',
      ],
      { cwd: ROOT, timeout: 60_000, env: { ...process.env, PIPED: piped }, encoding: 'utf8' },
    );
    expect(viaFd.stderr).toMatch(/^wrote \/dev\/fd\/1 \(70032 bytes\)/);
    expect(readFileSync(piped).equals(bytes)).toBe(true);
    // A directory is refused, not written into.
    const directory = join(out, 'a-directory.onnx');
    mkdirSync(directory);
    const refused = exportCli(['--model', DIGITS, '--out', directory]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toBe(`export-onnx: cannot write ${directory}: it is a directory\n`);
  });

  /** An export to `file` whose file operations wait as `fault` says. */
  const exportHeldAt = (file: string, fault: object) =>
    spawnWithFsFaults('src/cli/export-onnx.ts', ['--model', DIGITS, '--out', file], [fault]);
  const temporaries = (dir: string) =>
    existsSync(dir) ? readdirSync(dir).filter((f) => f.includes('.tmp-')) : [];
  /** Whether process `pid` has a file named `name` open (its descriptors, /proc/<pid>/fd). */
  const holdsOpen = (pid: number, name: string) =>
    readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return basename(readlinkSync(`/proc/${pid}/fd/${fd}`)) === name;
      } catch {
        return false; // closed meanwhile
      }
    });
  const waitFor = async (done: () => boolean) => {
    for (let i = 0; i < 1200 && !done(); i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(done()).toBe(true);
  };

  it('a signal while it writes leaves the earlier file as it was: no temporary, no directory it made', async () => {
    // Its .tmp-<pid>-… stayed beside --out, and the directories it made with it, as report's
    // had before h250: export-onnx wrote by its own rule, not report's.
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      // An earlier export stays whole; a new directory is removed again.
      const earlier = join(out, `signal-${signal}.onnx`);
      writeFileSync(earlier, 'an earlier export');
      const made = join(out, `signal-made-${signal}`);
      const inNew = join(made, 'deeper', 'x.onnx');
      for (const file of [earlier, inNew]) {
        // The temporary is opened (its name taken), its bytes not written yet.
        const { child, ended } = exportHeldAt(file, {
          op: 'write',
          path: '.tmp-',
          delayMs: 60_000,
        });
        await waitFor(() => temporaries(join(file, '..')).length === 1);
        child.kill(signal);
        expect(await ended).toEqual([null, signal]);
        expect(temporaries(join(file, '..'))).toEqual([]);
      }
      expect(readFileSync(earlier, 'utf8')).toBe('an earlier export');
      expect(existsSync(made)).toBe(false);
    }
  }, 240_000);

  it('a signal once its rename has begun finishes it: the new file is whole, no temporary left', async () => {
    // The rename waits: the bytes are written (and synced) under the temporary name.
    const file = join(out, 'renaming.onnx');
    writeFileSync(file, 'an earlier export');
    const { child, ended } = exportHeldAt(file, { op: 'rename', path: '.tmp-', delayMs: 60_000 });
    const expected = join(out, 'renaming-expected.onnx');
    expect(exportCli(['--model', DIGITS, '--out', expected]).status).toBe(0);
    // Written and closed: the rename is what it waits in (the signal would otherwise come while
    // it writes, the case above).
    const staged = () => temporaries(out).find((f) => f.startsWith('renaming.onnx.tmp-'));
    await waitFor(() => {
      const name = staged();
      return name !== undefined && !holdsOpen(child.pid!, name);
    });
    child.kill('SIGTERM');
    expect(await ended).toEqual([null, 'SIGTERM']);
    expect(temporaries(out)).toEqual([]);
    expect(readFileSync(file).equals(readFileSync(expected))).toBe(true);
  }, 120_000);

  it('a write that fails (a full device) leaves the earlier file and no temporary, naming --out', () => {
    const file = join(out, 'full.onnx');
    writeFileSync(file, 'an earlier export');
    const result = spawnSync(
      process.execPath,
      [...nodeArgs('src/cli/export-onnx.ts'), '--model', DIGITS, '--out', file],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 60_000,
        env: {
          ...process.env,
          NODE_OPTIONS: `--import ${FS_FAULTS_MODULE}`,
          NORMSERVE_TEST_FS_FAULTS: JSON.stringify([
            { op: 'fsync', path: '.tmp-', code: 'ENOSPC' },
          ]),
        },
      },
    );
    expect(result.stderr).toBe(`export-onnx: cannot write ${file}: no space left on the device\n`);
    expect(result.status).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe('an earlier export');
    expect(temporaries(out)).toEqual([]);
  });

  it('opens a model whose name is a number by its directory (<repo>/123), as the server serves it', () => {
    const repository = makeTempDir('export-onnx-numeric');
    copyBundledModel('digits', repository);
    renameSync(join(repository, 'digits'), join(repository, '123'));
    const config = join(repository, '123', '1', 'config.json');
    writeFileSync(
      config,
      JSON.stringify({ ...(JSON.parse(readFileSync(config, 'utf8')) as object), name: '123' }),
    );
    const model = exportCli(['--model', join(repository, '123'), '--out', join(out, '123.onnx')]);
    expect(model.status, model.stderr).toBe(0);
    expect(model.stderr).toMatch(/^wrote .*123\.onnx \(\d+ bytes\): 123 version 1, /);
    const version = exportCli([
      '--model',
      join(repository, '123', '1'),
      '--out',
      join(out, '123-1.onnx'),
    ]);
    expect(version.status, version.stderr).toBe(0);
    expect(readFileSync(join(out, '123.onnx')).equals(readFileSync(join(out, '123-1.onnx')))).toBe(
      true,
    );
  });
});
