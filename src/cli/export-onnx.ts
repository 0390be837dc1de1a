#!/usr/bin/env node
/**
 * `npm run export:onnx -- --model <repo>/<name>[/<version>] --out model.onnx [--probabilities]`:
 * writes the version's compiled (fused) plan as an ONNX model, with the service's own export code
 * (the same bytes as `GET /v1/models/{name}/versions/{v}/model.onnx`). A regular file appears
 * whole or not at all, by the rule report's files are written by (output-path.ts's
 * writeOutputFile): written and fsynced beside --out (beside the file its links name) under a
 * temporary name and renamed into place; a failure or a signal leaves no temporary. Anything else
 * is opened and written, as onnx.save and torch.onnx.export write it: a pipe, a device,
 * /dev/stdout (resolveOutputTarget).
 */
import { dirname, resolve } from 'node:path';
import { NormserveError } from '../errors/index.js';
import { noProbabilities, ONNX_OPSET, openModelDirectory } from '../service/index.js';
import { cliCommand, runCli } from './cli-errors.js';
import {
  prepareOutputDirectory,
  refuseInsideRepository,
  removeEmptyDirectoriesSync,
  resolveOutputTarget,
  writeOutputFile,
} from './output-path.js';
import { packageVersion } from './package-version.js';

interface Flags {
  model: string;
  out: string;
  probabilities: boolean;
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
  const target = await resolveOutputTarget(flags.out);
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
    // A signal removes the directories made here too (a failure: below).
    await writeOutputFile(flags.out, target, onnx.bytes, () => removeEmptyDirectoriesSync(created));
  } catch (e) {
    removeEmptyDirectoriesSync(created);
    throw e;
  }
  process.stderr.write(
    `wrote ${flags.out} (${onnx.bytes.byteLength} bytes): ${onnx.model} version ${onnx.version}, ${onnx.summary}\n`,
  );
}

await runCli('export-onnx', () => main(process.argv));
