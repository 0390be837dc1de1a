/**
 * `npm run predict` as a user runs it: a row whose outputs overflow float32 (64 values of 3e38
 * on the digits model) is refused as the HTTP route refuses it — the same message, naming the
 * file and the row by its CSV line or its path in the JSON — on one stderr line, exit 1, nothing
 * on stdout, instead of printing null predictions. A bad value is named the same way: a JSON
 * file's rows were named `rows[2]` (the file unnamed), a CSV value beyond float32 was "not a
 * finite number".
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledVersionDir } from '../helpers/bundled-models.js';
import { digitsTestRows } from '../helpers/digits.js';
import { nodeArgs, ROOT, runEntry } from '../helpers/entries.js';
import { makeTempDir, removeTempDirs } from '../helpers/temp-files.js';

/** The bundled digits version (not models/digits: `npm run train` may have added versions). */
const DIGITS = bundledVersionDir('digits');

afterAll(removeTempDirs);

const dir = makeTempDir('predict-cli');
const { x } = digitsTestRows();
const huge = Array.from({ length: 64 }, () => 3e38);
const OVERFLOW = "the model's outputs overflow float32 for this row (values too large)";

function predictCli(input: string, ...flags: string[]) {
  const result = spawnSync(
    process.execPath,
    [...nodeArgs('src/cli/predict.ts'), '--model', DIGITS, '--input', input, ...flags],
    { cwd: ROOT, encoding: 'utf8', timeout: 60_000 },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function csv(name: string, rows: readonly (readonly number[])[]): string {
  const file = join(dir, name);
  const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
  writeFileSync(file, `${[header, ...rows.map((r) => r.join(','))].join('\n')}\n`);
  return file;
}

describe('npm run predict: a row whose outputs overflow float32', () => {
  it('in a JSON file: refused by the file and its path there, exit 1, nothing printed', () => {
    const file = join(dir, 'rows.json');
    writeFileSync(file, JSON.stringify({ instances: [x[0], x[1], huge, x[2]] }));
    for (const flags of [[], ['--no-fused']]) {
      const result = predictCli(file, ...flags);
      expect(result.status).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`predict: ${file}: instances[2]: ${OVERFLOW}\n`);
    }
    const array = join(dir, 'array.json');
    writeFileSync(array, JSON.stringify([x[0], huge]));
    expect(predictCli(array).stderr).toBe(`predict: ${array}: [1]: ${OVERFLOW}\n`);
  });

  it('in a CSV: refused by its line of the file (the header is line 1)', () => {
    const file = csv('rows.csv', [x[0]!, huge, x[1]!]);
    const result = predictCli(file);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`predict: ${file}: line 3: ${OVERFLOW}\n`);
  });

  it('the same rows without it are predicted as before', () => {
    const result = predictCli(csv('fine.csv', [x[0]!, x[1]!]));
    expect(result.status, result.stderr).toBe(0);
    const printed = JSON.parse(result.stdout) as { predictions: number[][]; labels: string[] };
    expect(printed.labels).toHaveLength(2);
    expect(printed.predictions.flat().every(Number.isFinite)).toBe(true);
  });
});

describe('npm run predict: a bad value names the file and its place', () => {
  const RANGE =
    'outside the float32 range (it would round to ±Infinity; the largest float32 is 3.4028234663852886e+38)';

  it('in a JSON file: its path in the file, after the file, once for all the places', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({ instances: [x[0], [...x[1]!.slice(0, 63), 'x'], [1, 2]] }),
    );
    const result = predictCli(file);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `predict: ${file}: instances[1][63]: expected a finite number, got "x"; instances[2]: expected 64 values, got 2\n`,
    );
    const array = join(dir, 'bad-array.json');
    writeFileSync(array, JSON.stringify([x[0], [...x[1]!.slice(0, 63), 1e39]]));
    expect(predictCli(array).stderr).toBe(`predict: ${array}: [1][63]: ${RANGE}\n`);
  });

  it('in a CSV: a value beyond float32 by file, line and column, in the same words', () => {
    const file = join(dir, 'beyond.csv');
    const header = Array.from({ length: 64 }, (_, i) => `p${i}`).join(',');
    writeFileSync(
      file,
      `${header}\n${x[0]!.join(',')}\n${[...x[1]!.slice(0, 63), '1e39'].join(',')}\n`,
    );
    const result = predictCli(file);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`predict: ${file}: line 3, column "p63": "1e39" is ${RANGE}\n`);
  });
});

describe('predict: a regression CSV’s true values are parsed as CSV numbers', () => {
  const BODY_MASS = join(ROOT, 'data/penguins/body-mass.csv');
  const out = makeTempDir('predict-regression');
  const model = join(out, 'body-mass/1');
  const predict = (input: string) =>
    runEntry('src/cli/predict.ts', ['--model', model, '--input', input]);
  /** body-mass.csv with the label cell of data row `row` (line row + 2) replaced. */
  const withLabel = (name: string, row: number, cell: string) => {
    const lines = readFileSync(BODY_MASS, 'utf8').split('\n');
    lines[row + 1] = lines[row + 1]!.replace(/[^,]*$/, cell);
    const file = join(dir, name);
    writeFileSync(file, lines.join('\n'));
    return file;
  };

  beforeAll(() => {
    const trained = runEntry('src/cli/train.ts', [
      ...['--no-progress', '--data', BODY_MASS, '--label-column', 'body_mass_g'],
      ...['--task', 'regression', '--epochs', '1', '--out', out],
    ]);
    expect(trained.status, trained.stderr).toBe(0);
  });

  it('reports RMSE and R² of the predictions against the label column', () => {
    const result = predict(BODY_MASS);
    expect(result.status, result.stderr).toBe(0);
    const y = readFileSync(BODY_MASS, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => Number(line.split(',').at(-1)));
    const p = (JSON.parse(result.stdout) as { predictions: number[][] }).predictions.map(
      (r) => r[0]!,
    );
    const mse = y.reduce((s, v, i) => s + (v - p[i]!) ** 2, 0) / y.length;
    const mean = y.reduce((s, v) => s + v, 0) / y.length;
    const variance = y.reduce((s, v) => s + (v - mean) ** 2, 0) / y.length;
    expect(result.stderr).toBe(
      `RMSE ${Math.sqrt(mse).toPrecision(4)}, R² ${(1 - mse / variance).toFixed(4)} (${y.length} rows) against column "body_mass_g"\n`,
    );
  });

  it('refuses --logits, which would change nothing for a regression model', () => {
    // review60: it was ignored, where export:onnx refuses --probabilities for the same model.
    const result = runEntry('src/cli/predict.ts', [
      '--model',
      model,
      '--input',
      BODY_MASS,
      '--logits',
    ]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'predict: --logits: model "body-mass" is a regression model, whose predictions are its raw outputs already\n',
    );
  });

  // Number() read "0x1A" as 26: an RMSE over made-up values.
  it('refuses the label cell "0x1A", naming its line and column', () => {
    const file = withLabel('label-0x1A.csv', 3, '0x1A');
    const result = predict(file);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      `predict: ${file}: line 5, column "body_mass_g": "0x1A" is not a finite number\n`,
    );
  });

  // A blank target is a row to predict, not a bad number: it was refused ("" is not a finite
  // number), so a file of rows to predict with the target column left empty gave no predictions.
  it('predicts rows whose label cell is blank and scores only the others, saying how many', () => {
    const all = predict(BODY_MASS);
    const p = (JSON.parse(all.stdout) as { predictions: number[][] }).predictions.map((r) => r[0]!);
    const lines = readFileSync(BODY_MASS, 'utf8').trim().split('\n');
    const blank = new Set([3, 7]);
    const file = join(dir, 'label-blank.csv');
    writeFileSync(
      file,
      `${lines.map((l, i) => (blank.has(i - 1) ? l.replace(/[^,]*$/, i === 4 ? '' : '  ') : l)).join('\n')}\n`,
    );
    const result = predict(file);
    expect(result.status, result.stderr).toBe(0);
    const predicted = (JSON.parse(result.stdout) as { predictions: number[][] }).predictions;
    expect(predicted.map((r) => r[0])).toEqual(p);
    const scored = lines
      .slice(1)
      .map((line, r) => ({ y: Number(line.split(',').at(-1)), p: p[r]! }))
      .filter((_, r) => !blank.has(r));
    const mse = scored.reduce((s, { y, p }) => s + (y - p) ** 2, 0) / scored.length;
    const mean = scored.reduce((s, { y }) => s + y, 0) / scored.length;
    const variance = scored.reduce((s, { y }) => s + (y - mean) ** 2, 0) / scored.length;
    expect(result.stderr).toBe(
      `RMSE ${Math.sqrt(mse).toPrecision(4)}, R² ${(1 - mse / variance).toFixed(4)} (${scored.length} rows; 2 rows with a blank "body_mass_g" left out) against column "body_mass_g"\n`,
    );
  });

  it('prints predictions and no score when every label cell is blank', () => {
    const lines = readFileSync(BODY_MASS, 'utf8').trim().split('\n').slice(0, 4);
    const file = join(dir, 'label-all-blank.csv');
    writeFileSync(
      file,
      `${lines.map((l, i) => (i === 0 ? l : l.replace(/[^,]*$/, ''))).join('\n')}\n`,
    );
    const result = predict(file);
    expect(result.status, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { predictions: number[][] }).predictions).toHaveLength(3);
    expect(result.stderr).toBe('');
  });
});

describe('predict: a classification CSV’s blank labels are rows without a truth', () => {
  const { y } = digitsTestRows();
  const labelled = (name: string, labels: readonly string[]) => {
    const file = join(dir, name);
    const header = [...Array.from({ length: 64 }, (_, i) => `p${i}`), 'label'].join(',');
    const rows = labels.map((label, r) => [...x[r]!, label].join(','));
    writeFileSync(file, `${[header, ...rows].join('\n')}\n`);
    return file;
  };

  // Every blank row counted as wrong: `accuracy 0.0000 (0/5)` for a file of rows to predict.
  it('scores only the rows with a label, saying how many were left out', () => {
    const truth = y.slice(0, 6).map(String);
    const predicted = (
      JSON.parse(predictCli(labelled('truth.csv', truth)).stdout) as {
        labels: string[];
      }
    ).labels;
    const labels = truth.map((t, r) => (r % 2 === 0 ? t : ''));
    const result = predictCli(labelled('half-blank.csv', labels));
    expect(result.status, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { labels: string[] }).labels).toEqual(predicted);
    const correct = [0, 2, 4].filter((r) => predicted[r] === truth[r]).length;
    expect(result.stderr).toBe(
      `accuracy ${(correct / 3).toFixed(4)} (${correct}/3; 3 rows with a blank "label" left out) against column "label"\n`,
    );
    // h248: labels the model does not have (`0.0` for its `0`) counted as wrong, without a word.
    const foreign = truth.map((t, r) => (r < 2 ? `${t}.0` : r === 2 ? 'x' : t));
    const mixed = predictCli(labelled('foreign.csv', foreign));
    expect(mixed.status, mixed.stderr).toBe(0);
    const right = [3, 4, 5].filter((r) => predicted[r] === truth[r]).length;
    const shown = [...new Set(foreign.slice(0, 3))].map((l) => `"${l}"`).join(', ');
    expect(mixed.stderr).toBe(
      `accuracy ${(right / 3).toFixed(4)} (${right}/3; 3 rows whose "label" is none of the model's labels left out: ${shown}) against column "label"\n`,
    );
    const all = predictCli(
      labelled(
        'all-foreign.csv',
        truth.map((t) => `${t}.0`),
      ),
    );
    expect(all.status, all.stderr).toBe(0);
    expect(all.stderr).toMatch(
      /^accuracy: no row's "label" is one of the model's labels \("0", "1", "2", … \(10 in all\)\); the file's: "\d\.0", /,
    );
    const none = predictCli(labelled('all-blank.csv', ['', '', '']));
    expect(none.status, none.stderr).toBe(0);
    expect((JSON.parse(none.stdout) as { labels: string[] }).labels).toEqual(predicted.slice(0, 3));
    expect(none.stderr).toBe('');
  });
});
