/**
 * What the CLIs refuse rather than ignore or find out too late, each in one stderr line with exit
 * code 1 and nothing written: flags an --init checkpoint cannot honour, an empty label cell, an
 * output path blocked at the version directory a run would create, a --label-column that names
 * no column, a directory or an oversized file given as input, a report page blocked by a directory.
 */
import { existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_INPUT_FILE_BYTES } from '../../src/training/index.js';
import { bundledVersionDir, copyBundledModel } from '../helpers/bundled-models.js';
import { ROOT, runEntry as run } from '../helpers/entries.js';
import { listTree, makeTempDir, removeTempDirs, writeTempFile } from '../helpers/temp-files.js';

afterAll(removeTempDirs);

const IRIS_DATA = join(ROOT, 'data/iris/iris.csv');
const DIGITS_DATA = join(ROOT, 'data/digits/digits.csv');

/** Exit 1, exactly one stderr line matching `line`, nothing on stdout. */
function expectRefused(result: ReturnType<typeof run>, line: RegExp): void {
  expect(result.status, result.stderr).toBe(1);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(line);
  expect(lines[0]).not.toMatch(/internal error|at .*\.ts:\d+/);
}

const inputs = makeTempDir('refusal-inputs');

describe('train --init: flags the checkpoint fixes are refused, not ignored', () => {
  it('names every architecture flag and a different --task in one line', () => {
    const out = makeTempDir('refusal-out');
    const result = run('src/cli/train.ts', [
      '--no-progress',
      '--data',
      DIGITS_DATA,
      '--epochs',
      '1',
      '--init',
      bundledVersionDir('digits'),
      '--hidden',
      '32',
      '--norm',
      'layernorm',
      '--dropout',
      '0.9',
      '--task',
      'regression',
      '--out',
      out,
    ]);
    expectRefused(
      result,
      /^train: --init \S*models\/digits\/1: the checkpoint fixes the network .*the task \(classification\).*, so --task, --hidden, --norm, --dropout cannot apply; remove them, or train without --init$/,
    );
    expect(listTree(out)).toEqual([]);
  });

  it('refuses a config file whose "architecture" the checkpoint would override', () => {
    const out = makeTempDir('refusal-out');
    const config = writeTempFile(inputs, 'arch.json', {
      data: { path: DIGITS_DATA },
      architecture: { hidden: [8] },
    });
    const result = run('src/cli/train.ts', [
      '--no-progress',
      '--config',
      config,
      '--init',
      bundledVersionDir('digits'),
      '--out',
      out,
    ]);
    expectRefused(result, /so \S*arch\.json's "architecture" cannot apply; remove it/);
    expect(listTree(out)).toEqual([]);
  });

  it('refuses a config file whose "layers" are another network than the checkpoint', () => {
    // The README's fine-tune passes the config the checkpoint was trained from (accepted, test
    // below); an MLP's layers given with the CNN's checkpoint wrote the CNN under the MLP's name.
    const out = makeTempDir('refusal-out');
    const config = join(ROOT, 'configs/digits-mlp.json');
    const result = run('src/cli/train.ts', [
      '--no-progress',
      '--config',
      config,
      '--init',
      bundledVersionDir('digits-cnn'),
      '--epochs',
      '1',
      '--out',
      out,
    ]);
    expectRefused(result, /so \S*digits-mlp\.json's "layers" cannot apply; remove it/);
    expect(listTree(out)).toEqual([]);
  });

  it('refuses a config file\'s "data.input_scaling" other than the checkpoint\'s input transform', () => {
    // models/digits/1 standardizes each pixel (input_scaling "standard"): {shift 0, scale 1} was
    // silently replaced by the checkpoint's scaling.
    const out = makeTempDir('refusal-out');
    const config = writeTempFile(inputs, 'scaling.json', {
      data: { path: DIGITS_DATA, input_scaling: { shift: 0, scale: 1 } },
    });
    const result = run('src/cli/train.ts', [
      ...['--no-progress', '--config', config, '--epochs', '1'],
      ...['--init', bundledVersionDir('digits'), '--out', out],
    ]);
    expectRefused(
      result,
      /^train: --init \S*models\/digits\/1: the checkpoint fixes .* and the input scaling \(its input_transform\), so \S*scaling\.json's "data\.input_scaling" cannot apply; remove it, or train without --init$/,
    );
    expect(listTree(out)).toEqual([]);
  });

  it('accepts the "data.input_scaling" the checkpoint was trained with ({shift 0, scale 0.1})', () => {
    // The checkpoint stores 0.1 as trained; the comparison is in float32, as the transform runs.
    const out = makeTempDir('refusal-out');
    const config = writeTempFile(inputs, 'scale-0.1.json', {
      data: { path: IRIS_DATA, input_scaling: { shift: 0, scale: 0.1 } },
    });
    const args = ['--no-progress', '--config', config, '--epochs', '1', '--out', out];
    expect(run('src/cli/train.ts', args).status).toBe(0);
    const tuned = run('src/cli/train.ts', [...args, '--init', join(out, 'iris/1')]);
    expect(tuned.status, tuned.stderr).toBe(0);
    expect(listTree(out).filter((p) => p.endsWith('model.safetensors'))).toHaveLength(2);
  });

  it('accepts the layers the checkpoint has (the README fine-tune)', () => {
    const out = makeTempDir('refusal-out');
    const result = run('src/cli/train.ts', [
      '--no-progress',
      '--config',
      join(ROOT, 'configs/digits-mlp.json'),
      '--init',
      bundledVersionDir('digits'),
      '--epochs',
      '1',
      '--out',
      out,
    ]);
    expect(result.status, result.stderr).toBe(0);
    expect(listTree(out).some((p) => p.endsWith('model.safetensors'))).toBe(true);
  });
});

describe('train --init: the CSV columns are matched to the checkpoint by name', () => {
  /** Iris with its columns in another order (`order` indexes the file's columns). */
  const permuted = (name: string, order: number[]) => {
    const lines = readFileSync(IRIS_DATA, 'utf8').trimEnd().split('\n');
    const text = lines
      .map((line) => {
        const cells = line.split(',');
        return order.map((i) => cells[i]).join(',');
      })
      .join('\n');
    return writeTempFile(inputs, name, `${text}\n`);
  };
  const train = (data: string, out: string, init?: string) =>
    run('src/cli/train.ts', [
      ...['--no-progress', '--data', data, '--epochs', '1', '--name', 'iris', '--out', out],
      ...(init ? ['--init', init] : []),
    ]);

  it('reorders a CSV whose columns are the checkpoint’s in another order, and refuses a missing one', () => {
    const base = makeTempDir('refusal-out');
    expect(train(IRIS_DATA, base).status).toBe(0);
    const init = join(base, 'iris/1');
    const [inOrder, reordered] = [makeTempDir('refusal-out'), makeTempDir('refusal-out')];
    expect(train(IRIS_DATA, inOrder, init).status).toBe(0);
    // petal_width, label, sepal_width, petal_length, sepal_length
    const result = train(permuted('reordered.csv', [3, 4, 1, 2, 0]), reordered, init);
    expect(result.status, result.stderr).toBe(0);
    const file = (dir: string, name: string) => readFileSync(join(dir, 'iris/1', name));
    // The same run, byte for byte: each column met its own input transform and weights.
    expect(file(reordered, 'model.safetensors').equals(file(inOrder, 'model.safetensors'))).toBe(
      true,
    );
    const config = JSON.parse(file(reordered, 'config.json').toString('utf8'));
    expect(config.training.feature_names).toEqual([
      'sepal_length',
      'sepal_width',
      'petal_length',
      'petal_width',
    ]);

    const out = makeTempDir('refusal-out');
    expectRefused(
      train(permuted('no-sepal-width.csv', [0, 2, 3, 4]), out, init),
      /^train: \S*no-sepal-width\.csv: no column named "sepal_width"; the model was trained on the columns "sepal_length", "sepal_width", "petal_length", "petal_width" \(matched by name\)$/,
    );
    const withId = readFileSync(IRIS_DATA, 'utf8')
      .trimEnd()
      .split('\n')
      .map((line, i) => `${i === 0 ? 'id' : i},${line}`);
    expectRefused(
      train(writeTempFile(inputs, 'extra.csv', `${withId.join('\n')}\n`), out, init),
      /^train: \S*extra\.csv: the column "id" is not among the model's features \("sepal_length", .*\); remove it$/,
    );
    expect(listTree(out)).toEqual([]);
  });
});

describe('train --patience without validation rows', () => {
  it('is refused, not ignored: early stopping has no validation loss to compare', () => {
    const out = makeTempDir('refusal-out');
    const config = writeTempFile(inputs, 'no-validation.json', {
      data: { path: IRIS_DATA, validation_fraction: 0 },
    });
    const result = run('src/cli/train.ts', [
      ...['--no-progress', '--config', config, '--patience', '3', '--out', out],
    ]);
    expectRefused(
      result,
      /^train: --patience: early stopping compares validation losses, and data\.validation_fraction is 0 \(no validation rows\): set a validation_fraction above 0, or train without patience$/,
    );
    expect(listTree(out)).toEqual([]);
  });
});

describe('train: an empty label cell', () => {
  it('is refused naming the file, line and column, as an empty feature cell is', () => {
    const out = makeTempDir('refusal-out');
    const lines = readFileSync(IRIS_DATA, 'utf8').split('\n');
    // The label is the last column: its cell on the third data row (line 4) emptied.
    lines[3] = lines[3]!.replace(/[^,]*$/, '');
    const data = writeTempFile(inputs, 'empty-label.csv', lines.join('\n'));
    const result = run('src/cli/train.ts', ['--no-progress', '--data', data, '--out', out]);
    expectRefused(
      result,
      /^train: \S*empty-label\.csv: line 4, column "label": the label is empty \(a row without a label cannot be trained on\)$/,
    );
    expect(listTree(out)).toEqual([]);
  });
});

describe('--label-column naming no column of the CSV', () => {
  const model = bundledVersionDir('digits');
  const digitsHead = readFileSync(DIGITS_DATA, 'utf8').split('\n').slice(0, 6).join('\n');
  const csv = writeTempFile(inputs, 'digits-head.csv', `${digitsHead}\n`);
  const columns = /unknown label column "zzz" \(columns: "p0", "p1", .*\)$/;

  it('predict refuses it naming the columns there are (it printed no accuracy, exit 0)', () => {
    const result = run('src/cli/predict.ts', [
      '--model',
      model,
      '--input',
      csv,
      '--label-column',
      'zzz',
    ]);
    expectRefused(result, new RegExp(`^predict: \\S*digits-head\\.csv: ${columns.source}`));
  });

  it('predict refuses it with a JSON input, whose rows have no columns', () => {
    const json = writeTempFile(inputs, 'row.json', [new Array(64).fill(0)]);
    const result = run('src/cli/predict.ts', [
      '--model',
      model,
      '--input',
      json,
      '--label-column',
      'label',
    ]);
    expectRefused(
      result,
      /^predict: --label-column label: names a column of a CSV input; \S*row\.json holds JSON rows, which have no columns$/,
    );
  });

  it('predict still takes a CSV without the default label column', () => {
    const features = writeTempFile(
      inputs,
      'features.csv',
      `${digitsHead
        .split('\n')
        .map((line) => line.split(',').slice(0, 64).join(','))
        .join('\n')}\n`,
    );
    const result = run('src/cli/predict.ts', ['--model', model, '--input', features]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
  });

  it('report refuses it before writing anything', () => {
    const out = join(makeTempDir('refusal-out'), 'report');
    const result = run('src/cli/report.ts', [
      '--model',
      model,
      '--data',
      csv,
      '--label-column',
      'zzz',
      '--out',
      out,
    ]);
    expectRefused(result, new RegExp(`^report: \\S*digits-head\\.csv: ${columns.source}`));
    expect(existsSync(out)).toBe(false);
  });
});

describe('train: a network the architecture flags cannot build', () => {
  it('is named by the flag that shaped it, not "the flags"', () => {
    const out = makeTempDir('refusal-out');
    const result = run('src/cli/train.ts', [
      '--no-progress',
      '--data',
      IRIS_DATA,
      '--hidden',
      '99999999',
      '--out',
      out,
    ]);
    expectRefused(
      result,
      /^train: --hidden: layers\[0\] \(linear\): its output \[99999999\] holds 99999999 values per sample, more than the limit of 16777216$/,
    );
    expect(listTree(out)).toEqual([]);
  });
});

describe('an input that is a directory, or over the size a file read whole may have', () => {
  // Sparse: its size is on record, its bytes take no disk; a refusal from the size reads none.
  const big = join(makeTempDir('refusal-big'), 'big.csv');
  writeFileSync(big, '');
  truncateSync(big, MAX_INPUT_FILE_BYTES + 1);
  const limit = `it holds ${(MAX_INPUT_FILE_BYTES + 1).toLocaleString('en-US')} bytes, over the limit of ${MAX_INPUT_FILE_BYTES.toLocaleString('en-US')} bytes`;

  it('train --data <dir> says "it is a directory", as predict does (EISDIR before)', () => {
    const dir = makeTempDir('refusal-dir');
    const result = run('src/cli/train.ts', ['--no-progress', '--data', dir, '--out', dir]);
    expectRefused(result, new RegExp(`^train: cannot read data file ${dir}: it is a directory$`));
  });

  it('train --config <dir> says so too', () => {
    const dir = makeTempDir('refusal-dir');
    const result = run('src/cli/train.ts', ['--no-progress', '--config', dir, '--out', dir]);
    expectRefused(
      result,
      new RegExp(`^train: cannot read training config ${dir}: it is a directory$`),
    );
  });

  it('train and predict refuse a file over the limit by its size, naming the limit', () => {
    const out = makeTempDir('refusal-out');
    const trained = run('src/cli/train.ts', ['--no-progress', '--data', big, '--out', out]);
    expectRefused(trained, new RegExp(`^train: cannot read data file ${big}: ${limit} \\(512 MiB`));
    const predicted = run('src/cli/predict.ts', [
      '--model',
      bundledVersionDir('digits'),
      '--input',
      big,
    ]);
    expectRefused(predicted, new RegExp(`^predict: cannot read input ${big}: ${limit}`));
    expect(listTree(out)).toEqual([]);
  });
});

describe('recalibrate: NDJSON rows named by their file line', () => {
  const repository = makeTempDir('refusal-repo');
  copyBundledModel('digits', repository, { checkout: ROOT });
  const model = join(repository, 'digits');
  const row = JSON.stringify(new Array(64).fill(1));

  const cases: { what: string; text: string; extra?: string[]; line: RegExp }[] = [
    {
      what: 'a row of the wrong width is "line 3", blank lines counted (was "s.ndjson[1]")',
      text: `${row}\n\n[1,2]\n`,
      line: /^recalibrate: \S*rows\.ndjson: line 3: expected 64 values, got 2$/,
    },
    {
      what: 'a file of blank lines names the file',
      text: '\n\n',
      line: /^recalibrate: \S*rows\.ndjson: no rows \(the file is empty or holds only blank lines\)$/,
    },
    {
      what: '--label-column with NDJSON rows, which have no columns',
      text: `${row}\n${row}\n`,
      extra: ['--label-column', 'label'],
      line: /^recalibrate: --label-column label: names a column of a CSV input; \S*rows\.ndjson holds JSON rows, which have no columns$/,
    },
    {
      what: 'a --note longer than the HTTP routes take (review60: 100 kB went into config.json)',
      text: `${row}\n${row}\n`,
      extra: ['--note', 'n'.repeat(1001)],
      line: /^recalibrate: --note: at most 1000 characters, as over HTTP \(got 1001\)$/,
    },
    {
      // Characters as HTTP counts them (code points), not UTF-16 units: 600 emoji were refused
      // as 1200 characters while HTTP took 1000 (the recalibration attacker of 2026-12-04).
      what: 'a --note of 1001 emoji, counted as HTTP counts it',
      text: `${row}\n${row}\n`,
      extra: ['--note', '\u{1F600}'.repeat(1001)],
      line: /^recalibrate: --note: at most 1000 characters, as over HTTP \(got 1001\)$/,
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const data = writeTempFile(makeTempDir('refusal-ndjson'), 'rows.ndjson', c.text);
      const result = run('src/cli/recalibrate.ts', [
        '--model',
        model,
        '--data',
        data,
        ...(c.extra ?? []),
      ]);
      expectRefused(result, c.line);
      expect(listTree(model)).toEqual([
        '1',
        ...listTree(join(model, '1')).map((f) => join('1', f)),
      ]);
    });
  }
});
