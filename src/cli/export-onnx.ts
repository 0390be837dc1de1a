#!/usr/bin/env node
/**
 * `npm run export:onnx -- --model <repo>/<name>[/<version>] --out model.onnx [--probabilities]`:
 * writes the version's compiled (fused) plan as an ONNX model, with the service's own export code
 * (the same bytes as `GET /v1/models/{name}/versions/{v}/model.onnx`). A regular file appears
 * whole or not at all: it is written beside --out (beside the file a link names) under a
 * temporary name and renamed into place. Anything else is opened and written as onnx.save and
 * torch.onnx.export write: a link's target, a pipe, /dev/stdout.
 */
import { randomBytes } from 'node:crypto';
import { lstat, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { NormserveError } from '../errors/index.js';
import { modelDirectoryHolding, ONNX_OPSET, openModelDirectory } from '../service/index.js';
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
 * Refuses an --out inside a model's directory of the exported model's repository (its own or
 * another's: `<repo>/<model>`): the file could replace a version's model.safetensors or
 * config.json, or an active-version record, which the server reads (review60: `--out
 * <model>/1/model.safetensors` broke version 1 with exit 0; the same into a sibling model, review
 * of 2026-12-04). Links are followed on both sides.
 */
async function checkOutsideModels(out: string, repository: string): Promise<void> {
  const modelDir = await modelDirectoryHolding(await realPath(repository), await realPath(out));
  if (modelDir !== undefined)
    throw new NormserveError(
      'OUTPUT_WRITE_FAILED',
      `--out ${out}: inside the model directory ${modelDir}, whose files the server reads; write the ONNX file elsewhere`,
    );
}

/**
 * Writes `bytes` to `path`. A regular file (or none yet) is replaced whole or not at all: written
 * under a temporary name beside it and renamed over it; through a link, the file the link names is
 * replaced and the link kept. Anything else that is not a directory (a pipe, a terminal,
 * /dev/stdout, a device) is opened and written, as onnx.save does: a rename would have replaced
 * the device node or the pipe with a regular file.
 */
async function writeWhole(path: string, bytes: Uint8Array): Promise<void> {
  const existing = await stat(path).catch(() => undefined);
  if (existing?.isDirectory())
    throw new NormserveError('OUTPUT_WRITE_FAILED', `cannot write ${path}: it is a directory`);
  // Not a regular file, or a link to nothing yet (an open creates the file it names).
  const dangling =
    existing === undefined && (await lstat(path).catch(() => undefined)) !== undefined;
  if (dangling || (existing !== undefined && !existing.isFile())) {
    await writeFile(path, bytes).catch((e: unknown) => {
      throw outputWriteFailed(path, e);
    });
    return;
  }
  const target = existing === undefined ? path : await realpath(path);
  const temporary = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temporary, bytes, { flag: 'wx' });
    await rename(temporary, target);
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
  await checkOutsideModels(flags.out, model.repository);
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
