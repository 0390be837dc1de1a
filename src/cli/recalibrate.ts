#!/usr/bin/env node
/**
 * Offline BatchNorm recalibration with the server's code:
 * `npm run recalibrate -- --model <repository>/<name> --data <file.csv|file.ndjson> [--mode exact|prior|running]
 *  [--prior-strength N] [--batch-size N] [--no-activate] [--note text]`.
 * Publishes the next version of the model atomically (and activates it unless --no-activate);
 * prints the result as JSON. A server watching the repository picks the new version up.
 * --prior-strength belongs to --mode prior and --batch-size to --mode running: given with another
 * mode (the default, exact, included) they are refused, not silently ignored.
 */
import { basename, dirname } from 'node:path';
import { Option } from 'commander';
import {
  inFile,
  inNumberRange,
  NormserveError,
  type NumberRange,
  rangeMessage,
} from '../errors/index.js';
import { integerText } from '../http/schemas/common.js';
import {
  type AvailableVersion,
  checkModeOptions,
  csvRowChunks,
  DEFAULT_CHUNK_ROWS,
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_PRIOR_STRENGTH,
  DEFAULT_RECALIBRATION_BATCH_SIZE,
  decimalText,
  LIMITS,
  labelColumnFor,
  labelColumnWithoutColumns,
  loadModelDirectory,
  ModelRegistry,
  modelLockHolder,
  ndjsonRowChunks,
  noteSchema,
  PRIOR_STRENGTH_RANGE,
  RECALIBRATION_BATCH_SIZE_RANGE,
  RECALIBRATION_MODES,
  type RecalibrationMode,
  type RecalibrationOutcome,
  RecalibrationService,
  trainingInfoOf,
} from '../service/index.js';
import { emptyCsv, MAX_INPUT_FILE_BYTES } from '../training/index.js';
import { cliCommand, runCli } from './cli-errors.js';
import { checkInputFormat } from './input-format.js';
import { interruptOnSignal } from './on-signal.js';
import { readInputTextParts } from './read-input.js';
import { interruptedLine } from './recalibrate-interrupted.js';

interface Flags {
  model: string;
  data: string;
  mode: RecalibrationMode;
  priorStrength?: string;
  batchSize?: string;
  activate: boolean;
  note?: string;
  labelColumn?: string;
}

/**
 * A numeric flag's value, held to the option's range with the flag's name, in the words of every
 * other range message: `--batch-size: expected an integer from 1 to 65536, got 0`.
 */
function numberFlag(flag: string, value: string | undefined, range: NumberRange) {
  if (value === undefined) return undefined;
  // An integer in decimal digits only, as HTTP's batch_size (integerText), and any other number
  // in decimal as HTTP's prior_strength (decimalText): Number() read "0x10" as 16.
  const text = value.trim();
  const n = range.integer ? integerText(text) : decimalText(text);
  if (inNumberRange(range, n)) return n;
  const message = rangeMessage(range, typeof n === 'number' && Number.isFinite(n) ? n : value);
  throw new NormserveError('INVALID_INPUT', `${flag}: ${message}`, {
    errors: [{ path: flag, message }],
  });
}

/**
 * The data file's rows as they are read, never the whole text or a JS array per row (a 2 M-row
 * CSV ran the CLI out of heap that way): NDJSON lines and CSV records go through service's
 * readers, the HTTP upload's (row-chunks.ts: float32 chunks of whole rows; the same rules and
 * words as a file read whole, the file and line named), in chunks of DEFAULT_CHUNK_ROWS rows, as
 * the rows held in memory were pushed before, so the statistics are the same bit for bit. A
 * line or record is bounded only by the file (the input limit), as when the file was read whole.
 */
async function* dataRows(
  text: AsyncIterable<string>,
  source: string,
  ndjson: boolean,
  parent: AvailableVersion,
  width: number,
  namedLabelColumn: string | undefined,
): AsyncGenerator<Float32Array> {
  const options = { source, chunkRows: DEFAULT_CHUNK_ROWS };
  let chunks: AsyncGenerator<Float32Array>;
  if (ndjson) {
    chunks = ndjsonRowChunks(text, width, { ...options, maxLineChars: MAX_INPUT_FILE_BYTES });
  } else {
    const model = {
      name: parent.name,
      inputWidth: width,
      ...trainingInfoOf(parent.checkpoint.config),
    };
    chunks = csvRowChunks(text, model, labelColumnFor(model, namedLabelColumn), {
      ...options,
      maxRecordChars: MAX_INPUT_FILE_BYTES,
      namedLabelColumn,
    });
  }
  let rows = 0;
  for await (const chunk of chunks) {
    rows += chunk.length / width;
    yield chunk;
  }
  if (rows > 0) return;
  // A CSV with a header has thrown (no data rows after the header).
  throw ndjson
    ? new NormserveError(
        'DATA_INVALID',
        inFile(source, 'no rows (the file is empty or holds only blank lines)'),
      )
    : emptyCsv(source);
}

async function main(argv: readonly string[]): Promise<void> {
  const program = cliCommand('recalibrate')
    .description(
      'Recalibrate the BatchNorm statistics of a model on unlabeled data and publish a new version',
    )
    .requiredOption(
      '--model <dir>',
      'model directory <repository>/<name> (its active version is the parent)',
    )
    .requiredOption(
      '--data <file>',
      'unlabeled rows: CSV with a header (a label column is ignored) or NDJSON arrays',
    )
    .addOption(
      new Option('--mode <mode>', 'statistics').choices(RECALIBRATION_MODES).default('exact'),
    )
    .option(
      '--prior-strength <n>',
      `prior mode: weight of the source statistics, in rows (default ${DEFAULT_PRIOR_STRENGTH})`,
    )
    .option(
      '--batch-size <n>',
      `running mode: rows per batch (default ${DEFAULT_RECALIBRATION_BATCH_SIZE})`,
    )
    .option('--no-activate', 'publish without making it the served version')
    .option('--note <text>', 'recorded in the new version’s provenance')
    .option(
      '--label-column <name>',
      'CSV column left out of the features (default: the model’s, else "label")',
    )
    .exitOverride();
  program.parse(argv, { from: 'node' });
  const flags = program.opts<Flags>();
  const flagNames = {
    mode: '--mode',
    priorStrength: '--prior-strength',
    batchSize: '--batch-size',
  };
  checkModeOptions(flags, flagNames, program.getOptionValueSource('mode') === 'default');
  const priorStrength = numberFlag('--prior-strength', flags.priorStrength, PRIOR_STRENGTH_RANGE);
  const batchSize = numberFlag('--batch-size', flags.batchSize, RECALIBRATION_BATCH_SIZE_RANGE);
  // The HTTP routes' limit (request-limits.ts): a note goes into config.json's provenance.
  if (flags.note !== undefined && !noteSchema.safeParse(flags.note).success)
    throw new NormserveError(
      'INVALID_INPUT',
      `--note: at most ${LIMITS.noteChars} characters, as over HTTP (got ${[...flags.note].length})`,
    );

  const dir = flags.model.replace(/\/+$/, '');
  // The directory must exist and hold versions; the hints name a repository given instead.
  const opened = await loadModelDirectory(dir);
  if (opened.versionNote) process.stderr.write(`recalibrate: ${opened.versionNote}\n`);
  if (opened.given === 'version') {
    throw new NormserveError(
      'MODEL_NOT_FOUND',
      `--model ${flags.model} is a version directory; give its model directory ${dirname(dir)} (the new version's parent is the active version; activate another one first to start from it)`,
    );
  }
  const name = basename(dir);
  const registry = new ModelRegistry(dirname(dir), { maxBatchSize: DEFAULT_MAX_BATCH_SIZE });
  // The active version alone, from the checkpoint just read; the model stays opened alone, so
  // the recalibration's refresh under its lock and the publish read no other version than the
  // one the active-version record names and the one published (ModelRegistry.openVersion).
  await registry.openVersion(name, opened.version, opened.checkpoint);

  // Binary rows and JSON bodies are the HTTP upload's, not this program's: named as such, not
  // parsed as a CSV ("no data rows after the header", `header names column "0" twice`).
  const format = checkInputFormat('recalibrate', flags.data, ['CSV', 'NDJSON'], {
    elsewhere: {
      float32:
        'float32 rows are read by the HTTP upload (POST …:recalibrate, Content-Type: application/octet-stream)',
      JSON: 'a JSON body is read by the HTTP route (POST …:recalibrate)',
    },
  });
  const ndjson = format === 'NDJSON';
  if (ndjson && flags.labelColumn !== undefined)
    throw labelColumnWithoutColumns(flags.labelColumn, flags.data);
  // Opened (or refused: no such file, over the input limit) before the model is locked; read
  // once it is, as the recalibration takes the rows.
  const text = await readInputTextParts(flags.data, '');
  // As a server builds it, but its job is this process's only: a failure writes nothing. The
  // model's lock names this program, so a server's 409 meanwhile names this process, not a job id
  // its GET /v1/jobs cannot find.
  const service = RecalibrationService.forRepository(registry, {
    maxSamples: Number.MAX_SAFE_INTEGER,
    jobRecords: 'memory',
    cli: 'recalibrate',
  });
  // Ctrl-C (or SIGTERM) stops the recalibration at its next pause: the model's lock released,
  // nothing published, as the server's shutdown interrupts a job (it was left to the next run to
  // find the lock stale).
  let outcome: RecalibrationOutcome;
  try {
    ({ outcome } = await interruptOnSignal(
      () => service.interrupt(),
      async (signal) =>
        process.stderr.write(
          interruptedLine(
            signal,
            dir,
            await modelLockHolder(dir).catch(() => 'unreadable' as const),
          ),
        ),
      () =>
        service.recalibrate(
          {
            model: name,
            mode: flags.mode,
            priorStrength,
            batchSize,
            activate: flags.activate,
            note: flags.note,
            // Not parsedAsItArrives, as the HTTP uploads are: with it the CLI once exited 13
            // (unsettled top-level await) while the helper was still computing, as nothing held the
            // event loop. A pass in flight holds it now (inference/wasm/event-loop-hold.ts; with the
            // overlap at 100,000 rows, 5 of 8 runs exited 13 before, 16 of 16 published after), but
            // whether the overlap pays for a file read from disk is not measured: left off.
          },
          {
            read: (parent, width) =>
              dataRows(text, flags.data, ndjson, parent, width, flags.labelColumn),
          },
        ),
    ));
  } finally {
    await text.close();
    await service.close();
  }
  process.stdout.write(`${JSON.stringify(outcome, null, 2)}\n`);
  process.stderr.write(
    `published ${dir}/${outcome.version} (parent ${outcome.parent_version}, ${outcome.mode}, ${outcome.samples} samples)${outcome.activated ? ', now active' : ', not activated'}\n`,
  );
  // Published (and active), but a crash may still undo it: said as what happened, exit 1. Not
  // to be retried as a failure: a second run would publish another version.
  if (outcome.warning) {
    process.stderr.write(`recalibrate: ${outcome.warning.message}\n`);
    process.exitCode = 1;
  }
  // Published, not activated because the storage failed writing the active-version record.
  const notActivated = outcome.not_activated;
  if (notActivated?.code === 'STORAGE_FULL' || notActivated?.code === 'STORAGE_UNAVAILABLE') {
    process.stderr.write(`recalibrate: ${notActivated.message}\n`);
    process.exitCode = 1;
  }
}

await runCli('recalibrate', () => main(process.argv));
