#!/usr/bin/env node
/**
 * `npm run export:onnx -- --model <repo>/<name>[/<version>] --out model.onnx [--probabilities]`:
 * writes the version's compiled (fused) plan as an ONNX model, with the service's own export code
 * (the same bytes as `GET /v1/models/{name}/versions/{v}/model.onnx`). A regular file appears
 * whole or not at all: it is written beside --out (beside the file its links name) under a
 * temporary name and renamed into place. Anything else is opened and written, as onnx.save and
 * torch.onnx.export write it: a pipe, a device, /dev/stdout (outputTarget).
 */
import { randomBytes } from 'node:crypto';
import { lstat, readlink, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { NormserveError } from '../errors/index.js';
import { noProbabilities, ONNX_OPSET, openModelDirectory } from '../service/index.js';
import { cliCommand, runCli } from './cli-errors.js';
import {
  outputWriteFailed,
  prepareOutputDirectory,
  realPath,
  refuseInsideRepository,
  removeEmptyDirectoriesSync,
} from './output-path.js';
import { packageVersion } from './package-version.js';

interface Flags {
  model: string;
  out: string;
  probabilities: boolean;
}

/** Links followed at most (Linux's own bound, ELOOP). */
const MAX_LINKS = 40;

/** A process's descriptor directory, where /dev/fd and /dev/stdout lead (proc(5)). */
const DESCRIPTOR_DIRECTORY = /^\/proc\/(\d+|self|thread-self)(\/task\/\d+)?\/fd$/;

/** Where --out's bytes land: `file`, with every link followed; `open`: written by opening --out. */
interface OutputTarget {
  file: string;
  open: boolean;
}

/**
 * Follows --out's links to the file its bytes land in, as an open would: a regular file or none yet
 * (a dangling link's target too) is replaced whole, `file` renamed over; anything else that is not
 * a directory (a pipe, a terminal, a device) is opened and written, as onnx.save does, since a
 * rename would replace the device node or the pipe with a regular file. A process's descriptor
 * links (/dev/stdout, /dev/fd/1 → /proc/<pid>/fd/1) are opened too: what a shell's redirection set
 * up (a file, a pipe) is written through the descriptor, not replaced; `file` is then the path the
 * descriptor names. Every other link is followed from its own directory, links resolved.
 */
async function outputTarget(path: string): Promise<OutputTarget> {
  let current = resolve(path);
  for (let hop = 0; hop <= MAX_LINKS; hop++) {
    const info = await lstat(current).catch(() => undefined);
    if (info === undefined) return { file: await realPath(current), open: false };
    if (!info.isSymbolicLink()) {
      if (info.isDirectory())
        throw new NormserveError('OUTPUT_WRITE_FAILED', `cannot write ${path}: it is a directory`);
      return { file: await realPath(current), open: !info.isFile() };
    }
    const to = await readlink(current);
    // The link's own directory, its links resolved: `..` in a relative link is taken from there,
    // as the kernel takes it.
    const directory = await realPath(dirname(current));
    if (DESCRIPTOR_DIRECTORY.test(directory)) {
      // A descriptor (/dev/stdout, /dev/fd/1): a path it names is checked, a pipe is not one.
      return {
        file: isAbsolute(to) ? await realPath(to) : join(directory, basename(current)),
        open: true,
      };
    }
    current = resolve(directory, to);
  }
  throw new NormserveError(
    'OUTPUT_WRITE_FAILED',
    `cannot write ${path}: more than ${MAX_LINKS} symbolic links on the way`,
  );
}

/** Writes `bytes` to --out `path` as `target` says: opened and written, or renamed into place. */
async function writeWhole(path: string, target: OutputTarget, bytes: Uint8Array): Promise<void> {
  if (target.open) {
    await writeFile(path, bytes).catch((e: unknown) => {
      throw outputWriteFailed(path, e);
    });
    return;
  }
  const temporary = `${target.file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temporary, bytes, { flag: 'wx' });
    await rename(temporary, target.file);
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
  const target = await outputTarget(flags.out);
  await refuseInsideRepository(
    flags.out,
    target.file,
    model.repository,
    'write the ONNX file elsewhere',
  );
  if (model.versionNote) process.stderr.write(`export-onnx: ${model.versionNote}\n`);
  // The flag's name, not the route's query parameter the service's refusal names (h248).
  if (flags.probabilities && model.task === 'regression')
    throw new NormserveError('INVALID_INPUT', `--probabilities: ${noProbabilities(model.name)}`);
  // Its directory is made as train's and report's --out are (mkdir -p), once the model opened;
  // the directories made are removed again if the export fails: nothing is left behind.
  const created = await prepareOutputDirectory(
    target.open ? dirname(resolve(flags.out)) : dirname(target.file),
    '--out',
  );
  let onnx: ReturnType<typeof model.exportOnnx>;
  try {
    onnx = model.exportOnnx({
      probabilities: flags.probabilities,
      producerVersion: packageVersion(),
    });
    await writeWhole(flags.out, target, onnx.bytes);
  } catch (e) {
    removeEmptyDirectoriesSync(created);
    throw e;
  }
  process.stderr.write(
    `wrote ${flags.out} (${onnx.bytes.byteLength} bytes): ${onnx.model} version ${onnx.version}, ${onnx.summary}\n`,
  );
}

await runCli('export-onnx', () => main(process.argv));
