#!/usr/bin/env node
/**
 * `npm run report -- --model <repo>/<name>[/<version>] --data <file.csv> [--out <dir>]`: the
 * drift of every BatchNorm layer on the CSV's rows and the before/after-BatchNorm histograms, as
 * SVG files and one self-contained HTML page (index.html) in the output directory.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NormserveError } from '../errors/index.js';
import {
  checkNamedLabelColumn,
  csvFeatureRows,
  labelColumnFor,
  openReportModel,
  parseServerConfigVariables,
} from '../service/index.js';
import { parseCsv } from '../training/index.js';
import { cliCommand, runCli } from './cli-errors.js';
import { checkOutputFiles, outputWriteFailed, prepareOutputDirectory } from './output-path.js';
import { readInputText } from './read-input.js';
import {
  channelStatsSvg,
  driftTableSvg,
  histogramSvg,
  layerFile,
  reportHtml,
} from './report-svg.js';

/** The environment variables report reads: the server's drift settings (docs/drift.md). */
const REPORT_VARIABLES = ['DRIFT_THRESHOLD', 'DRIFT_MIN_ROWS'] as const;

interface Flags {
  model: string;
  data: string;
  out: string;
  labelColumn?: string;
}

async function main(argv: readonly string[]): Promise<void> {
  const program = cliCommand('report')
    .description('Drift and before/after-BatchNorm pictures of a model on a CSV, as SVG + HTML')
    .requiredOption('--model <dir>', 'model directory: <repo>/<name> or <repo>/<name>/<version>')
    .requiredOption(
      '--data <file>',
      'CSV with a header row (feature columns; a label column is ignored)',
    )
    .option('--out <dir>', 'output directory', 'report')
    .option(
      '--label-column <name>',
      'column left out of the features (default: the model’s, else "label")',
    )
    .addHelpText(
      'after',
      `\nEnvironment: ${REPORT_VARIABLES.join(' and ')}, as the server reads them (docs/drift.md); no other variable is read.`,
    )
    .exitOverride();
  program.parse(argv, { from: 'node' });
  const flags = program.opts<Flags>();
  // The threshold and the minimum rows are the server's, by its rules; nothing else is read.
  const config = parseServerConfigVariables(process.env, REPORT_VARIABLES);
  const text = await readInputText(flags.data, 'data ');
  const model = await openReportModel(flags.model);
  const table = parseCsv(text, flags.data);
  checkNamedLabelColumn(table.header, flags.labelColumn, flags.data);
  const { rows } = csvFeatureRows(table, model, labelColumnFor(model, flags.labelColumn));
  const width = model.inputWidth;
  const input = new Float32Array(rows.length * width);
  rows.forEach((row, r) => {
    input.set(row, r * width);
  });
  if (rows.length < 2)
    throw new NormserveError('DATA_INVALID', `${flags.data}: at least 2 rows are needed`);
  const report = model.report(input, rows.length, {
    threshold: config.DRIFT_THRESHOLD,
    minRows: config.DRIFT_MIN_ROWS,
  });
  const svgs = new Map<string, string>([['drift.svg', driftTableSvg(report)]]);
  for (const p of report.pictures) {
    const f = layerFile(p.path);
    svgs.set(
      `layer-${f}-before.svg`,
      histogramSvg(p.before, `BatchNorm ${p.path}: inputs before`, '#5b8def'),
    );
    svgs.set(
      `layer-${f}-after.svg`,
      histogramSvg(p.after, `BatchNorm ${p.path}: after (ReLU at 0)`, '#27ae60', 0),
    );
    svgs.set(`layer-${f}-channels.svg`, channelStatsSvg(p));
  }
  await prepareOutputDirectory(flags.out, '--out');
  await checkOutputFiles(flags.out, ['index.html', ...svgs.keys()]);
  const write = (file: string, text: string) =>
    writeFile(join(flags.out, file), text).catch((e: unknown) => {
      throw outputWriteFailed(join(flags.out, file), e);
    });
  for (const [file, svg] of svgs) await write(file, svg);
  await write('index.html', reportHtml(report, svgs, flags.data));
  process.stdout.write(
    `${JSON.stringify({ model: report.model, version: report.version, rows: report.rows, score: report.score, threshold: report.threshold, recommended: report.recommended, layers: report.drift.map((d) => ({ path: d.path, mean_shift: d.mean_shift, log_std_ratio: d.log_std_ratio, score: d.score })), files: ['index.html', ...svgs.keys()].map((f) => join(flags.out, f)) })}\n`,
  );
}

await runCli('report', () => main(process.argv));
