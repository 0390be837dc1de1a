#!/usr/bin/env node
/**
 * `npm run predict -- --model <repo>/<name>[/<version>] --input <file.csv|file.json>`: predictions
 * as JSON on stdout, computed by the service's own code (registry, fused plan, softmax). A CSV
 * needs a header; columns are matched to the model's feature names when it records them, and a
 * label column, if present, is used to report accuracy (classification) or RMSE and R²
 * (regression) on stderr, over the rows whose label cell is not blank (a blank one is a row to
 * predict, without a truth). A bad row names the file and its place there: its CSV line (and column),
 * or its path in the JSON (`rows.json: instances[2][63]`, `[2][63]` in a top-level array); so does
 * a row whose outputs overflow float32, refused as the server refuses it (one stderr line, exit 1,
 * nothing on stdout).
 */
import { z } from 'zod';
import {
  fileLine,
  isNormserveError,
  NormserveError,
  parseJsonText,
  quote,
} from '../errors/index.js';
import {
  type CsvFeatureModel,
  CsvFeatureReader,
  checkFiniteOutputs,
  csvRecords,
  labelColumnFor,
  labelColumnWithoutColumns,
  openModelDirectory,
  type PredictOutput,
} from '../service/index.js';
import { csvNumber, emptyCsv, MAX_INPUT_FILE_BYTES, regressionFit } from '../training/index.js';
import { cliCommand, runCli } from './cli-errors.js';
import { checkInputFormat } from './input-format.js';
import { readInputText, readInputTextParts } from './read-input.js';

interface Flags {
  model: string;
  input: string;
  labelColumn?: string;
  fused: boolean;
  logits: boolean;
}

/**
 * A JSON input file: `[...]` or `{"instances": [...]}` (TF Serving's row format), one sample per
 * element, flat or nested by the model's input shape; the samples are the service's to check.
 */
const jsonInputSchema = z.union([
  z.array(z.unknown()),
  z.looseObject({ instances: z.array(z.unknown()) }),
]);

/**
 * The instances of a JSON input file and their path in the file (`instances`, or `` for a
 * top-level array, whose rows are `[2]`).
 */
function rowsFromJson(text: string, source: string): { rows: unknown[]; field: string } {
  const value = parseJsonText(text, source, 'DATA_INVALID');
  const parsed = jsonInputSchema.safeParse(value);
  if (!parsed.success)
    throw new NormserveError(
      'DATA_INVALID',
      `${source}: expected [[...], ...] or {"instances": [[...], ...]}`,
    );
  const top = Array.isArray(parsed.data);
  const rows = Array.isArray(parsed.data) ? parsed.data : parsed.data.instances;
  if (rows.length === 0) throw new NormserveError('DATA_INVALID', `${source}: no rows to predict`);
  return { rows, field: top ? '' : 'instances' };
}

/**
 * A CSV input's feature rows, read as the file is (training's csvRecords, service's
 * CsvFeatureReader: the rules and words of a file read whole, the file and line named) straight
 * into one float32 matrix — not the whole text, a table of strings and a JS array per row beside
 * it (a 1 M-row CSV took 3.5 GB that way) — with each row's file line and its label column's cell,
 * if the CSV has one. `sizeBytes` bounds the rows: a feature cell is at least one character and
 * a comma or line end, so the matrix is allocated once (its pages touched only as rows fill it).
 */
async function rowsFromCsv(
  text: AsyncIterable<string>,
  sizeBytes: number,
  source: string,
  model: CsvFeatureModel,
  labelColumn: string,
  namedLabelColumn: string | undefined,
): Promise<{ data: Float32Array; rows: number; lines: number[]; labels: string[] | undefined }> {
  const width = model.inputWidth;
  const reader = new CsvFeatureReader(model, labelColumn, source, namedLabelColumn);
  let data = new Float32Array((Math.floor(sizeBytes / (2 * width)) + 1) * width);
  const lines: number[] = [];
  let labels: string[] | undefined;
  let labelIndex = -1;
  let records = 0;
  for await (const { record, line } of csvRecords(text, source, MAX_INPUT_FILE_BYTES)) {
    records++;
    const rows = lines.length;
    // A file that grew since its size was read: room for as many rows again.
    if ((rows + 1) * width > data.length) {
      const grown = new Float32Array(data.length * 2);
      grown.set(data);
      data = grown;
    }
    if (!reader.take(record, line, data, rows * width)) {
      labelIndex = record.indexOf(labelColumn);
      if (labelIndex >= 0) labels = [];
      continue;
    }
    lines.push(line);
    labels?.push(record[labelIndex]!);
  }
  if (records === 0) throw emptyCsv(source);
  reader.finish();
  return { data, rows: lines.length, lines, labels };
}

async function main(argv: readonly string[]): Promise<void> {
  const program = cliCommand('predict')
    .description('Predict with a model directory; prints JSON')
    .requiredOption(
      '--model <dir>',
      'model directory: <repo>/<name> (active version) or <repo>/<name>/<version>',
    )
    .requiredOption(
      '--input <file>',
      'CSV with a header row, or JSON [[...]] / {"instances": [[...]]} (samples flat or nested by the input shape)',
    )
    .option(
      '--label-column <name>',
      'CSV column holding the true values, for accuracy or RMSE (default: the column the model was trained to predict, else "label")',
    )
    .option('--no-fused', 'use the unfused reference path instead of the folded kernels')
    .option('--logits', 'also print the raw model outputs', false)
    .exitOverride();
  program.parse(argv, { from: 'node' });
  const flags = program.opts<Flags>();
  const json =
    checkInputFormat('predict', flags.input, ['CSV', 'JSON'], {
      elsewhere: { NDJSON: 'NDJSON rows are read by recalibrate' },
    }) === 'JSON';
  // A JSON file is parsed whole; a CSV's text is read as its rows are taken (rowsFromCsv). Either
  // is opened (or refused) before the model.
  const input = json
    ? { json: await readInputText(flags.input, 'input ') }
    : { csv: await readInputTextParts(flags.input, 'input ') };
  const model = await openModelDirectory(flags.model).catch(async (e: unknown) => {
    await input.csv?.close();
    throw e;
  });
  if (model.versionNote) process.stderr.write(`predict: ${model.versionNote}\n`);
  // As export:onnx refuses --probabilities for one: a flag that would change nothing is refused.
  if (flags.logits && model.task === 'regression') {
    await input.csv?.close();
    throw new NormserveError(
      'INVALID_INPUT',
      `--logits: model "${model.name}" is a regression model, whose predictions are its raw outputs already`,
    );
  }
  const labelColumn = labelColumnFor(model, flags.labelColumn);
  let rows: unknown[] | undefined;
  // A CSV's rows, read as float32 already.
  let floatRows: { data: Float32Array; rows: number } | undefined;
  let field = 'rows';
  let truth: string[] | undefined;
  // The true values of a regression, each parsed as a CSV number is (its line and column named).
  let targets: (() => Targets) | undefined;
  // Where a row came from, for a row refused as the server refuses it (outputs that overflow).
  let rowPath = (r: number) => `${field}[${r}]`;
  if (input.json !== undefined) {
    if (flags.labelColumn !== undefined)
      throw labelColumnWithoutColumns(flags.labelColumn, flags.input);
    ({ rows, field } = rowsFromJson(input.json, flags.input));
  } else {
    const text = input.csv;
    let csv: Awaited<ReturnType<typeof rowsFromCsv>>;
    try {
      csv = await rowsFromCsv(text, text.size, flags.input, model, labelColumn, flags.labelColumn);
    } finally {
      await text.close();
    }
    floatRows = csv;
    const { lines, labels } = csv;
    truth = labels;
    rowPath = (r) => fileLine(flags.input, lines[r]!);
    if (labels) targets = () => regressionTargets(labels, lines, flags.input, labelColumn);
  }
  let output: PredictOutput;
  try {
    output = floatRows
      ? model.predictRows(floatRows.data, floatRows.rows, { fused: flags.fused })
      : model.predict(rows!, { fused: flags.fused, field });
    checkFiniteOutputs(output, rowPath);
  } catch (e) {
    // The places in a JSON file are paths in it (`instances[2][63]`); the message names the file
    // once, before them, as a CSV's names it before its line.
    if (json && isNormserveError(e) && e.code === 'INVALID_INPUT')
      throw new NormserveError(e.code, `${flags.input}: ${e.message}`, {
        errors: e.errors,
        cause: e,
      });
    throw e;
  }
  const w = output.outputWidth;
  const matrix = (data: Float32Array) =>
    Array.from({ length: output.rows }, (_, r) => Array.from(data.subarray(r * w, (r + 1) * w)));
  const result = {
    model: output.model,
    model_version: output.version,
    predictions: matrix(output.probabilities ?? output.outputs),
    ...(output.labels ? { labels: output.labels } : {}),
    ...(flags.logits && output.probabilities ? { logits: matrix(output.outputs) } : {}),
  };
  // Before stdout: a label cell that is no number fails the run with nothing printed.
  const score =
    targets && output.task === 'regression' && output.outputWidth === 1
      ? regressionScore(output.outputs, targets(), labelColumn)
      : truth && output.labels && model.labels
        ? accuracyScore(output.labels, truth, labelColumn, model.labels)
        : undefined;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (score !== undefined) process.stderr.write(`${score}\n`);
}

/**
 * Whether a row has a true value: a blank cell in the target column is a row one wants predicted
 * (its value unknown), not a wrong answer or a bad number. It is predicted and left out of the
 * score.
 */
const hasTruth = (cell: string): boolean => cell.trim() !== '';

/** `(9/10)`, or `(9/10; 5 rows with a blank "species" left out)`: the rows a score is over. */
function scoredRows(scored: string, blank: number, column: string, more = ''): string {
  return `(${scored}${blank === 0 ? '' : `; ${blank} row${blank === 1 ? '' : 's'} with a blank ${quote(column)} left out`}${more})`;
}

/** A few distinct values, quoted: `"7.0", "x"`, or `"0.0", "1.0", "2.0", … (10 in all)`. */
function someOf(values: readonly string[]): string {
  const shown = values.slice(0, 3).map((v) => quote(v));
  return values.length <= 3 ? shown.join(', ') : `${shown.join(', ')}, … (${values.length} in all)`;
}

/**
 * The accuracy line over the rows whose true label is one of the model's; undefined when no row
 * has one. A row whose label the model does not have is left out and said (`0.0` where the model
 * learned `0`, a class it never saw), as `train --init` refuses such a label: counted as wrong it
 * gave `accuracy 0.0000 (0/360)` without a word (h248).
 */
function accuracyScore(
  predicted: readonly string[],
  truth: readonly string[],
  column: string,
  classes: readonly string[],
): string | undefined {
  const known = new Set(classes);
  const labelled = truth.flatMap((t, i) => (hasTruth(t) ? [i] : []));
  if (labelled.length === 0) return undefined;
  const scored = labelled.filter((i) => known.has(truth[i]!));
  const foreign = [...new Set(labelled.filter((i) => !known.has(truth[i]!)).map((i) => truth[i]!))];
  if (scored.length === 0)
    return `accuracy: no row's ${quote(column)} is one of the model's labels (${someOf(classes)}); the file's: ${someOf(foreign)}`;
  const left = labelled.length - scored.length;
  const foreignNote =
    left === 0
      ? ''
      : `; ${left} row${left === 1 ? '' : 's'} whose ${quote(column)} is none of the model's labels left out: ${someOf(foreign)}`;
  const correct = scored.filter((i) => predicted[i] === truth[i]).length;
  return `accuracy ${(correct / scored.length).toFixed(4)} ${scoredRows(`${correct}/${scored.length}`, truth.length - labelled.length, column, foreignNote)} against column ${quote(column)}`;
}

/** The true values of a regression's rows that have one, by row; and how many rows there are. */
interface Targets {
  rows: number[];
  values: number[];
  total: number;
}

/**
 * The target column's values, each parsed as a CSV number is (a non-blank cell that is no number
 * is refused naming its line and column); blank cells are rows without a true value.
 */
function regressionTargets(
  labels: readonly string[],
  lines: readonly number[],
  source: string,
  column: string,
): Targets {
  const rows: number[] = [];
  const values: number[] = [];
  labels.forEach((cell, r) => {
    if (!hasTruth(cell)) return;
    rows.push(r);
    values.push(csvNumber(cell, source, lines[r]!, column));
  });
  return { rows, values, total: labels.length };
}

/** The RMSE (and R²) line over the rows that have a true value; undefined when none has one. */
function regressionScore(
  outputs: Float32Array,
  targets: Targets,
  column: string,
): string | undefined {
  if (targets.rows.length === 0) return undefined;
  const fit = regressionFit(
    targets.rows.map((r) => outputs[r]!),
    targets.values,
  );
  const n = targets.rows.length;
  return `RMSE ${fit.rmse.toPrecision(4)}${fit.r2 === undefined ? '' : `, R² ${fit.r2.toFixed(4)}`} ${scoredRows(`${n} row${n === 1 ? '' : 's'}`, targets.total - n, column)} against column ${quote(column)}`;
}

await runCli('predict', () => main(process.argv));
