#!/usr/bin/env node
/**
 * `npm run report -- --model <repo>/<name>[/<version>] --data <file.csv> [--out <dir>]`: the
 * drift of every BatchNorm layer on the CSV's rows and the before/after-BatchNorm histograms, as
 * SVG files and one self-contained HTML page (index.html) in the output directory.
 */
import { constants } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
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
import { checkInputFormat } from './input-format.js';
import {
  checkOutputFiles,
  outputWriteFailed,
  prepareOutputDirectory,
  refuseInsideRepository,
  removeEmptyDirectoriesSync,
  writeFilesAllOrNone,
} from './output-path.js';
import { readInputText } from './read-input.js';
import {
  channelStatsSvg,
  driftTableSvg,
  histogramSvg,
  layerPictureFile,
  REPORT_FILE_PATTERN,
  REPORT_TITLE_PREFIX,
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

/**
 * Refuses an `--out` directory that holds a file of a report's names (REPORT_FILE_PATTERN) unless
 * its index.html is an earlier report's: writing there replaces those files and removes the
 * others, and a site's own index.html or a `layer-9-before.svg` of someone else's is not ours to
 * replace (review60: `--out site` replaced its index.html, `--out dashboard` the checkout's).
 */
async function checkReportDirectory(dir: string, flag: string): Promise<void> {
  // A directory of those names is checkOutputFiles' refusal.
  const taken = (await readdir(dir, { withFileTypes: true })).filter(
    (e) => !e.isDirectory() && REPORT_FILE_PATTERN.test(e.name),
  );
  if (taken.length === 0) return;
  const index = join(dir, 'index.html');
  const head = await readFile(index, {
    encoding: 'utf8',
    flag: constants.O_RDONLY | constants.O_NONBLOCK,
  })
    .then((text) => text.slice(0, 1024))
    .catch(() => '');
  if (head.includes(`<title>${REPORT_TITLE_PREFIX}`)) return;
  throw new NormserveError(
    'OUTPUT_WRITE_FAILED',
    `${flag} ${dir}: holds ${taken
      .map((e) => e.name)
      .sort()
      .slice(0, 3)
      .join(
        ', ',
      )}${taken.length > 3 ? ', …' : ''}, and no earlier report (its index.html) is there; a report would replace or remove them: give a new or empty directory, or one holding an earlier report`,
  );
}

/**
 * Removes the files an earlier report left in `dir` that this one did not write (another model's
 * `layer-*.svg`, which the new index.html does not show): only names a report writes
 * (REPORT_FILE_PATTERN), only files.
 */
async function removeEarlierReportFiles(dir: string, written: ReadonlySet<string>): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || written.has(entry.name) || !REPORT_FILE_PATTERN.test(entry.name))
      continue;
    await unlink(join(dir, entry.name)).catch((e: unknown) => {
      throw outputWriteFailed(join(dir, entry.name), e);
    });
  }
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
  checkInputFormat('report', flags.data, ['CSV'], { text });
  const model = await openReportModel(flags.model);
  if (model.versionNote) process.stderr.write(`report: ${model.versionNote}\n`);
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
    svgs.set(
      layerPictureFile(p.path, 'before'),
      histogramSvg(p.before, `BatchNorm ${p.path}: inputs before`, '#5b8def'),
    );
    svgs.set(
      layerPictureFile(p.path, 'after'),
      histogramSvg(p.after, `BatchNorm ${p.path}: after (ReLU at 0)`, '#27ae60', 0),
    );
    svgs.set(layerPictureFile(p.path, 'channels'), channelStatsSvg(p));
  }
  await refuseInsideRepository(
    flags.out,
    join(flags.out, 'index.html'),
    model.repository,
    'write the report elsewhere',
  );
  const created = await prepareOutputDirectory(flags.out, '--out');
  const files = new Map([...svgs, ['index.html', reportHtml(report, svgs, flags.data)]]);
  try {
    await checkReportDirectory(flags.out, '--out');
    await checkOutputFiles(flags.out, files.keys());
    // index.html last: it shows the pictures. A signal also removes the directories made here.
    await writeFilesAllOrNone(flags.out, files, () => removeEmptyDirectoriesSync(created));
  } catch (e) {
    removeEmptyDirectoriesSync(created);
    throw e;
  }
  await removeEarlierReportFiles(flags.out, new Set(files.keys()));
  // Said once the report is written (a run refused later prints its one error line only). The
  // server's rule makes no recommendation on fewer rows than DRIFT_MIN_ROWS, whatever the
  // score; "no recalibration needed" would then say more than the rows can (review60).
  if (report.tooFewRows)
    process.stderr.write(
      `report: ${rows.length} rows, fewer than DRIFT_MIN_ROWS (${report.minRows}): the drift is shown, but no recalibration is recommended on so few rows\n`,
    );
  process.stdout.write(
    `${JSON.stringify({ model: report.model, version: report.version, rows: report.rows, score: report.score, threshold: report.threshold, min_rows: report.minRows, recommended: report.recommended, layers: report.drift.map((d) => ({ path: d.path, mean_shift: d.mean_shift, log_std_ratio: d.log_std_ratio, score: d.score })), files: ['index.html', ...svgs.keys()].map((f) => join(flags.out, f)) })}\n`,
  );
}

await runCli('report', () => main(process.argv));
