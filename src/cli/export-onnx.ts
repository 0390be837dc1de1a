#!/usr/bin/env node
/**
 * `npm run export:onnx -- --model <repo>/<name>[/<version>] --out model.onnx [--probabilities]`:
 * writes the version's compiled (fused) plan as an ONNX model, with the service's own export code
 * (the same bytes as `GET /v1/models/{name}/versions/{v}/model.onnx`). The file appears whole or
 * not at all: it is written beside --out under a temporary name and renamed into place.
 */
import { randomBytes } from 'node:crypto';
import { realpath, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { NormserveError } from '../errors/index.js';
import { ONNX_OPSET, openModelDirectory, VERSION_NAME_PATTERN } from '../service/index.js';
import { cliCommand, runCli } from './cli-errors.js';
import {
  outputWriteFailed,
  prepareOutputDirectory,
  removeEmptyDirectoriesSync,
} from './output-path.js';
import { packageVersion } from './package-version.js';

interface Flags {
  model: string;
  out: string;
  probabilities: boolean;
}

/** A path with its existing directories' links resolved (the rest as given). */
async function realPath(path: string): Promise<string> {
  const full = resolve(path);
  const real = await realpath(full).catch(() => undefined);
  if (real !== undefined) return real;
  const parent = dirname(full);
  return parent === full ? full : join(await realPath(parent), basename(full));
}

/**
 * Refuses an --out inside the model's directory (`<repo>/<name>`): the file could replace a
 * version's own model.safetensors or config.json, or the active-version record, which the server
 * reads (review60: `--out <model>/1/model.safetensors` broke version 1 with exit 0).
 */
async function checkOutsideModel(out: string, model: string): Promise<void> {
  const given = resolve(model);
  const modelDir = await realPath(
    VERSION_NAME_PATTERN.test(basename(given)) ? dirname(given) : given,
  );
  const rel = relative(modelDir, await realPath(out));
  if (rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep)))
    throw new NormserveError(
      'OUTPUT_WRITE_FAILED',
      `--out ${out}: inside the model's directory ${modelDir}, whose files the server reads; write the ONNX file elsewhere`,
    );
}

async function writeWhole(path: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temporary, bytes, { flag: 'wx' });
    await rename(temporary, path);
  } catch (e) {
    // ENOTDIR (a file on the path) would fail the clean-up too: the error to report is the write's.
    await rm(temporary, { force: true }).catch(() => undefined);
    throw outputWriteFailed(path, e);
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const program = cliCommand('export-onnx')
    .description(
      `Write a model version as ONNX (opset ${ONNX_OPSET}): the compiled plan, BatchNorm and the input transform folded`,
    )
    .requiredOption(
      '--model <dir>',
      'model directory: <repo>/<name> (active version) or <repo>/<name>/<version>',
    )
    .requiredOption(
      '--out <file>',
      'the ONNX file to write (replaced if it exists; its directory is made if missing)',
    )
    .option(
      '--probabilities',
      'add a second output "probabilities" (softmax of the logits); classification models only',
      false,
    )
    .exitOverride();
  program.parse(argv, { from: 'node' });
  const flags = program.opts<Flags>();
  const model = await openModelDirectory(flags.model);
  await checkOutsideModel(flags.out, flags.model);
  if (model.activeRecordProblem)
    process.stderr.write(`export-onnx: ${model.activeRecordProblem}\n`);
  // Its directory is made as train's and report's --out are (mkdir -p), once the model opened;
  // the directories made are removed again if the export fails: nothing is left behind.
  const created = await prepareOutputDirectory(dirname(resolve(flags.out)), '--out');
  let onnx: ReturnType<typeof model.exportOnnx>;
  try {
    onnx = model.exportOnnx({
      probabilities: flags.probabilities,
      producerVersion: packageVersion(),
    });
    await writeWhole(flags.out, onnx.bytes);
  } catch (e) {
    removeEmptyDirectoriesSync(created);
    throw e;
  }
  process.stderr.write(
    `wrote ${flags.out} (${onnx.bytes.byteLength} bytes): ${onnx.model} version ${onnx.version}, ${onnx.summary}\n`,
  );
}

await runCli('export-onnx', () => main(process.argv));
