#!/usr/bin/env node
/**
 * `npm run predict -- --model <repo>/<name>[/<version>] --input <file.csv|file.json>`: predictions
 * as JSON on stdout, computed by the service's own code (registry, fused plan, softmax). A CSV
 * needs a header; columns are matched to the model's feature names when it records them, and a
 * label column, if present, is used to report accuracy (classification) or RMSE and R²
 * (regression) on stderr. A bad row names the file and its place there: its CSV line (and column),
 * or its path in the JSON (`rows.json: instances[2][63]`, `[2][63]` in a top-level array); so does
 * a row whose outputs overflow float32, refused as the server refuses it (one stderr line, exit 1,
 * nothing on stdout).
 */
import { Command } from 'commander';
import { isNormserveError, NormserveError, printable } from '../errors/index.js';
import {
  checkFiniteOutputs,
  checkNamedLabelColumn,
  csvFeatureRows,
  labelColumnFor,
  labelColumnWithoutColumns,
  openModelDirectory,
  type PredictOutput,
} from '../service/index.js';
import { csvPlace, parseCsv } from '../training/index.js';
import { runCli } from './cli-errors.js';
import { readInputText } from './read-input.js';

interface Flags {
  model: string;
  input: string;
  labelColumn?: string;
  fused: boolean;
  logits: boolean;
}

/**
 * The instances of a JSON input file: `[...]` or `{"instances": [...]}`, one sample per element,
 * flat or nested by the model's input shape (checked by the service), and their path in the file
 * (`instances`, or `` for a top-level array, whose rows are `[2]`).
 */
function rowsFromJson(text: string, source: string): { rows: unknown[]; field: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    // V8 quotes the text around the error: raw bytes, for a binary file.
    throw new NormserveError(
      'DATA_INVALID',
      `${source}: not valid JSON (${printable((e as Error).message)})`,
    );
  }
  const top = Array.isArray(value);
  const rows = top ? value : (value as { instances?: unknown } | null)?.instances;
  if (!Array.isArray(rows))
    throw new NormserveError(
      'DATA_INVALID',
      `${source}: expected [[...], ...] or {"instances": [[...], ...]}`,
    );
  if (rows.length === 0) throw new NormserveError('DATA_INVALID', `${source}: no rows to predict`);
  return { rows, field: top ? '' : 'instances' };
}

async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('predict')
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
  const text = await readInputText(flags.input, 'input ');
  const model = await openModelDirectory(flags.model);
  const labelColumn = labelColumnFor(model, flags.labelColumn);
  const json = flags.input.toLowerCase().endsWith('.json');
  let rows: unknown[];
  let field = 'rows';
  let truth: string[] | undefined;
  // Where a row came from, for a row refused as the server refuses it (outputs that overflow).
  let rowPath = (r: number) => `${field}[${r}]`;
  if (json) {
    if (flags.labelColumn !== undefined)
      throw labelColumnWithoutColumns(flags.labelColumn, flags.input);
    ({ rows, field } = rowsFromJson(text, flags.input));
  } else {
    const table = parseCsv(text, flags.input);
    checkNamedLabelColumn(table.header, flags.labelColumn, flags.input);
    const features = csvFeatureRows(table, model, labelColumn);
    rows = features.rows;
    truth = features.labels;
    rowPath = (r) => csvPlace(table, r);
  }
  let output: PredictOutput;
  try {
    output = model.predict(rows, { fused: flags.fused, field });
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
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (truth && output.labels) {
    const correct = output.labels.filter((l, i) => l === truth![i]).length;
    process.stderr.write(
      `accuracy ${(correct / output.rows).toFixed(4)} (${correct}/${output.rows}) against column "${labelColumn}"\n`,
    );
  } else if (truth && output.task === 'regression' && output.outputWidth === 1) {
    const y = truth.map(Number);
    const mean = y.reduce((a, b) => a + b, 0) / y.length;
    let residual = 0;
    let total = 0;
    y.forEach((v, i) => {
      residual += (v - output.outputs[i]!) ** 2;
      total += (v - mean) ** 2;
    });
    process.stderr.write(
      `RMSE ${Math.sqrt(residual / y.length).toPrecision(4)}${total > 0 ? `, R² ${(1 - residual / total).toFixed(4)}` : ''} (${y.length} rows) against column "${labelColumn}"\n`,
    );
  }
}

await runCli('predict', () => main(process.argv));
