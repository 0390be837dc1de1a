/**
 * `npm run export:onnx` as a user runs it: the file it writes is the service's export byte for
 * byte (the HTTP route serves the same), onnxruntime runs it to normserve's outputs, and failures
 * exit 1 with one stderr line and leave no file behind.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { nodeArgs } from '../helpers/entries.js';
import { onnxSession, runOnnx } from '../helpers/onnx-runtime.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';
import { OUTPUT_ATOL } from '../helpers/tolerances.js';

/** The bundled digits version (not models/digits: `npm run train` may have added versions). */
const DIGITS = bundledVersionDir('digits');

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

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

  it("refuses an --out inside the model directory: a version's own files stay as they were", () => {
    // review60: --out <model>/1/model.safetensors replaced the weights with the ONNX file.
    const repository = makeTempDir('export-onnx-inside');
    copyBundledModel('digits', repository);
    const weights = join(repository, 'digits', '1', 'model.safetensors');
    const before = readFileSync(weights);
    for (const [model, target] of [
      [join(repository, 'digits'), weights],
      [join(repository, 'digits', '1'), join(repository, 'digits', 'digits.onnx')],
    ] as const) {
      const result = exportCli(['--model', model, '--out', target]);
      expect(result.status).toBe(1);
      expect(result.stderr).toBe(
        `export-onnx: --out ${target}: inside the model's directory ${join(repository, 'digits')}, whose files the server reads; write the ONNX file elsewhere\n`,
      );
    }
    expect(readFileSync(weights).equals(before)).toBe(true);
    expect(readdirSync(join(repository, 'digits')).sort()).toEqual(['1']);
  });
});
