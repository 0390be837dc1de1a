/**
 * The train CLI as a user runs it: a child process `node --import tsx src/cli/train.ts` from the
 * repository root. Bad input must exit non-zero with ONE clear line on stderr and write nothing;
 * a good run publishes the next version of the model with its config, weights and metrics.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledVersionDir, copyBundledModel } from '../helpers/bundled-models.js';
import { nodeArgs } from '../helpers/entries.js';
import { listTree, makeTempDir, removeTempDirs, writeTempFile } from '../helpers/temp-files.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const IRIS_CONFIG = 'configs/iris-mlp.json';
const IRIS_DATA = join(ROOT, 'data/iris/iris.csv');

afterAll(removeTempDirs);

interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function trainCli(args: readonly string[]): CliResult {
  const result = spawnSync(
    process.execPath,
    [...nodeArgs('src/cli/train.ts'), '--no-progress', ...args],
    { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The iris training config with changes, written to a temp file; the data path made absolute. */
function irisConfigFile(dir: string, name: string, change: (c: IrisConfig) => void): string {
  const config = JSON.parse(readFileSync(join(ROOT, IRIS_CONFIG), 'utf8')) as IrisConfig;
  config.data.path = IRIS_DATA;
  change(config);
  return writeTempFile(dir, name, config);
}

interface IrisConfig {
  data: { path: string };
  layers: Record<string, unknown>[];
}

const inputs = makeTempDir('cli-inputs');
const irisHeader = 'sepal_length,sepal_width,petal_length,petal_width,label';

/** Each bad input: the arguments and what the one stderr line must contain. */
const failures: { what: string; args: () => string[]; expected: (string | RegExp)[] }[] = [
  {
    // The checkpoint's columns are matched by name (cli-refusals.test.ts): iris has none of the
    // digits model's, which the line says rather than blaming the config for a shape.
    // (A config's layers other than the checkpoint's are refused first: cli-refusals.test.ts.)
    what: '--init of a model whose input columns are not in the data',
    args: () => [
      '--data',
      IRIS_DATA,
      '--label-column',
      'label',
      '--init',
      bundledVersionDir('digits'),
    ],
    expected: [
      /^train: \S*data\/iris\/iris\.csv: no column named "p0", "p1", .*; the model was trained on the columns "p0", "p1", .* \(matched by name\)$/,
    ],
  },
  {
    what: 'a missing data file',
    args: () => ['--config', IRIS_CONFIG, '--data', join(inputs, 'missing.csv')],
    expected: ['cannot read data file', join(inputs, 'missing.csv'), 'no such file'],
  },
  {
    what: 'a missing config file',
    args: () => ['--config', join(inputs, 'missing.json')],
    expected: ['cannot read training config', join(inputs, 'missing.json'), 'no such file'],
  },
  {
    what: 'a config file that is not JSON',
    args: () => ['--config', writeTempFile(inputs, 'broken.json', '{"name": "iris",')],
    expected: ['broken.json', 'not valid JSON'],
  },
  {
    what: 'a config file that is JSON but not an object',
    args: () => ['--config', writeTempFile(inputs, 'array.json', '[{"name": "iris"}]')],
    expected: [/^train: \S*array\.json: must be a JSON object$/],
  },
  {
    what: 'a CSV without a header row',
    args: () => [
      '--config',
      IRIS_CONFIG,
      '--data',
      writeTempFile(inputs, 'no-header.csv', '5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n'),
    ],
    expected: ['no-header.csv', 'no header row'],
  },
  {
    what: 'a non-numeric cell',
    args: () => [
      '--config',
      IRIS_CONFIG,
      '--data',
      writeTempFile(
        inputs,
        'non-numeric.csv',
        `${irisHeader}\n5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n4.7,3.2,abc,0.2,0\n`,
      ),
    ],
    expected: ['non-numeric.csv', 'line 4', 'column "petal_length"', '"abc"'],
  },
  {
    what: 'an unknown label column',
    args: () => ['--config', IRIS_CONFIG, '--label-column', 'species'],
    expected: [
      'unknown label column "species" (named by --label-column; columns: ',
      '"sepal_length", "sepal_width"',
    ],
  },
  {
    // A CSV with no "label" column and no --label-column: the flag is named.
    what: 'no label column and no --label-column',
    args: () => [
      '--data',
      writeTempFile(inputs, 'unlabeled.csv', 'a,b,y\n1,2,0\n3,4,1\n'),
      '--out',
      join(inputs, 'no-model'),
    ],
    expected: [
      'unknown label column "label" (the default; name the column to predict with --label-column; columns: "a", "b", "y")',
    ],
  },
  {
    what: '--batch-size 1 with a BatchNorm config',
    args: () => ['--config', IRIS_CONFIG, '--batch-size', '1'],
    expected: ['more than 1 value per channel'],
  },
  {
    what: 'layer shapes that do not chain',
    args: () => [
      '--config',
      irisConfigFile(inputs, 'no-chain.json', (c) => {
        c.layers[3]!.in_features = 8;
      }),
    ],
    expected: ['layers[3]', 'in_features 8', '16'],
  },
  {
    what: 'an unknown layer type',
    args: () => [
      '--config',
      irisConfigFile(inputs, 'conv.json', (c) => {
        c.layers[1] = { type: 'conv3d', in_channels: 16, out_channels: 16, kernel_size: 3 };
      }),
    ],
    expected: ['conv.json', 'layers[1].type'],
  },
  {
    what: 'an invalid flag value (--epochs abc)',
    args: () => ['--config', IRIS_CONFIG, '--epochs', 'abc'],
    expected: ['--epochs', 'abc'],
  },
  {
    // Decimal, as the server's settings read numbers: Number() read "0x10" as 16 (review51).
    what: 'a learning rate in hexadecimal (--lr 0x1)',
    args: () => ['--config', IRIS_CONFIG, '--lr', '0x1'],
    expected: ['--lr', 'expected a number ≥ 0, got "0x1"'],
  },
  {
    // In every other flag's words, not commander's "option '--lr <x>' argument 'NaN' is invalid" (review60).
    what: 'a learning rate that is no number (--lr NaN)',
    args: () => ['--config', IRIS_CONFIG, '--lr', 'NaN'],
    expected: [/^train: --lr: expected a number ≥ 0, got "NaN"$/],
  },
  // A bad flag is reported under the flag's name, not as a problem of the config file.
  {
    what: 'a negative learning rate (--lr -1)',
    args: () => ['--config', IRIS_CONFIG, '--lr', '-1'],
    expected: [/^train: --lr: expected a number ≥ 0, got -1$/],
  },
  {
    what: 'negative epochs (--epochs -5)',
    args: () => ['--config', IRIS_CONFIG, '--epochs', '-5'],
    expected: [
      /^train: --epochs: at least 1 \(0 epochs would publish the random initial weights as a model\)$/,
    ],
  },
  {
    what: 'zero epochs (--epochs 0): it would publish the untrained initial weights',
    args: () => ['--data', IRIS_DATA, '--epochs', '0'],
    expected: [
      /^train: --epochs: at least 1 \(0 epochs would publish the random initial weights as a model\)$/,
    ],
  },
  {
    what: 'epochs beyond the bound (--epochs 1e12 would run for ever)',
    args: () => ['--data', IRIS_DATA, '--epochs', '1000000000000'],
    expected: [/^train: --epochs: expected an integer from 1 to 100000, got 1000000000000$/],
  },
  // An integer flag is decimal digits, as HTTP's integers (integerText): Number() read "0x10" as
  // 16, and `--seed 1e20` printed zod's safe-integer message before the range's.
  {
    what: 'a hexadecimal integer (--epochs 0x10)',
    args: () => ['--data', IRIS_DATA, '--epochs', '0x10'],
    expected: [/^train: --epochs: expected an integer from 1 to 100000, got "0x10"$/],
  },
  {
    what: 'an integer in exponent notation (--seed 1e20), in one message',
    args: () => ['--data', IRIS_DATA, '--seed', '1e20'],
    expected: [/^train: --seed: expected an integer from 0 to 4294967295, got "1e20"$/],
  },
  {
    what: 'epochs beyond the bound in the config file',
    args: () => [
      '--config',
      irisConfigFile(inputs, 'many-epochs.json', (c) => {
        (c as unknown as { training: { epochs: number } }).training.epochs = 100_001;
      }),
    ],
    expected: [
      /many-epochs\.json: training\.epochs: expected an integer from 1 to 100000, got 100001$/,
    ],
  },
  {
    what: 'a model name with a path in it (--name ../evil)',
    args: () => ['--config', IRIS_CONFIG, '--name', '../evil'],
    expected: [/^train: --name: expected a model name: letters, digits, .* got "\.\.\/evil"$/],
  },
  {
    what: 'several bad flags at once, each named',
    args: () => ['--data', IRIS_DATA, '--lr', '-1', '--epochs', '2.5', '--task', 'clustering'],
    expected: [
      '--lr: expected a number ≥ 0, got -1',
      '--epochs: expected an integer from 1 to 100000, got "2.5"',
      '--task: expected one of "classification", "regression", got "clustering"',
    ],
  },
  {
    what: 'a bad hidden width (--hidden 128,-4) names the flag and the item',
    args: () => ['--data', IRIS_DATA, '--hidden', '128,-4'],
    expected: [/^train: --hidden\[1\]: expected an integer > 0, got -4$/],
  },
  {
    what: 'an unknown --norm',
    args: () => ['--data', IRIS_DATA, '--norm', 'groupnorm'],
    expected: [
      /^train: --norm: expected one of "batchnorm", "layernorm", "none", got "groupnorm"$/,
    ],
  },
  {
    what: 'a bad value in the config file still names the file and the field',
    args: () => [
      '--config',
      irisConfigFile(inputs, 'zero-epochs.json', (c) => {
        (c as unknown as { training: { epochs: number } }).training.epochs = 0;
      }),
    ],
    expected: ['zero-epochs.json: training.epochs: at least 1'],
  },
  {
    what: '--hidden with a config that pins the layers',
    args: () => ['--config', IRIS_CONFIG, '--hidden', '8'],
    expected: [/^train: --hidden: configs\/iris-mlp.json pins the network in "layers"/],
  },
  {
    what: 'neither --config nor --data',
    args: () => ['--label-column', 'y'],
    expected: [/^train: --data: a CSV file is required/],
  },
  {
    what: 'a numeric target without --task regression',
    args: () => [
      '--data',
      join(ROOT, 'data/penguins/body-mass.csv'),
      '--label-column',
      'body_mass_g',
    ],
    expected: [
      'label column "body_mass_g" holds 94 distinct numbers',
      'looks like a numeric target',
      '--task regression',
    ],
  },
  {
    what: 'a label column with a single class',
    args: () => [
      '--data',
      writeTempFile(inputs, 'one-class.csv', 'a,b,label\n1,2,x\n3,4,x\n5,6,x\n'),
    ],
    expected: ['label column "label" has a single value ("x")', 'at least 2 classes'],
  },
];

describe('train CLI: bad input exits non-zero with one line on stderr and writes nothing', () => {
  for (const f of failures) {
    it(f.what, () => {
      const out = makeTempDir('cli-out');
      const result = trainCli([...f.args(), '--out', out]);
      expect(result.status, result.stderr).not.toBe(0);
      expect(result.status).not.toBeNull();
      const lines = result.stderr.trimEnd().split('\n');
      const last = lines.at(-1)!;
      for (const part of f.expected) {
        if (typeof part === 'string') expect(last).toContain(part);
        else expect(last).toMatch(part);
      }
      expect(last).not.toMatch(/internal error|at .*\.ts:\d+/);
      expect(result.stdout).toBe('');
      expect(listTree(out)).toEqual([]);
      // Nothing but the error: no progress or log line before it.
      expect(lines, `stderr:\n${result.stderr}`).toEqual([last]);
    });
  }
});

describe('train CLI: a run that diverges', () => {
  it('exits 1 naming the epoch where the loss stopped being finite, and publishes nothing', () => {
    const out = makeTempDir('cli-out');
    const result = trainCli([
      ...['--data', IRIS_DATA, '--lr', '1e6', '--optimizer', 'sgd', '--epochs', '3'],
      ...['--name', 'irislive', '--out', out],
    ]);
    expect(result.status, result.stderr).toBe(1);
    const last = result.stderr.trimEnd().split('\n').at(-1)!;
    expect(last).toMatch(/^train: training diverged: the validation loss is NaN at epoch 1;/);
    expect(last).toContain('lr 1000000 with sgd');
    expect(result.stdout).toBe('');
    expect(listTree(out)).toEqual([]);
  });
});

describe('train CLI: a network too large for WebAssembly memory', () => {
  it('is refused in one line with exit code 1, before its tensors are allocated', () => {
    const out = makeTempDir('cli-out');
    // The child reports its peak resident memory as it exits (kilobytes).
    const report = `process.on('exit', () => process.stderr.write('maxRSS ' + process.resourceUsage().maxRSS + '\\n'))`;
    const result = spawnSync(
      process.execPath,
      [
        '--import',
        `data:text/javascript,${encodeURIComponent(report)}`,
        ...nodeArgs('src/cli/train.ts'),
        '--no-progress',
        '--data',
        IRIS_DATA,
        '--hidden',
        '16384,16384',
        '--epochs',
        '1',
        '--out',
        out,
      ],
      { cwd: ROOT, encoding: 'utf8', timeout: 30_000 },
    );
    expect(result.status, result.stderr).toBe(1);
    const [line, rss, ...rest] = result.stderr.trimEnd().split('\n');
    expect(rest, result.stderr).toEqual([]);
    expect(line).toMatch(
      /^train: this network needs about \d+\.\d GiB of WebAssembly memory to train, over wasm32's 4 GiB limit: 268,648,451 parameters \(weights and gradients 2\.0 GiB, AdamW state 2\.0 GiB, matrix-product workspace [\d.]+ GiB\) and activations for batch size 64 \([\d.]+ MiB\); train narrower layers \(--hidden, .*\) or a smaller batch size \(--batch-size\)$/,
    );
    // The weights alone are 1 GiB (their gradients, Adam's state and the workspace 5 GiB more):
    // a run that allocated them before refusing would exceed this by far.
    expect(Number(rss!.replace('maxRSS ', ''))).toBeLessThan(512 * 1024);
    expect(result.stdout).toBe('');
    expect(listTree(out)).toEqual([]);
  });
});

describe('train CLI: a good run', () => {
  it('publishes version 1, then version 2, with config, weights and metrics', () => {
    const out = makeTempDir('cli-repo');
    const first = trainCli(['--config', IRIS_CONFIG, '--epochs', '2', '--out', out]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toContain(`wrote ${join(out, 'iris', '1')} (version 1)`);
    expect(listTree(out)).toEqual([
      'iris',
      'iris/1',
      'iris/1/config.json',
      'iris/1/metrics.json',
      'iris/1/model.safetensors',
    ]);

    const metrics = JSON.parse(readFileSync(join(out, 'iris/1/metrics.json'), 'utf8'));
    expect(metrics.seed).toBe(7);
    expect(metrics.data_sha256).toBe(
      createHash('sha256').update(readFileSync(IRIS_DATA)).digest('hex'),
    );
    expect(metrics.epochs).toHaveLength(2);
    metrics.epochs.forEach((e: Record<string, unknown>, i: number) => {
      expect(e.epoch).toBe(i + 1);
      expect(typeof e.train_loss).toBe('number');
      expect(typeof e.val_loss).toBe('number');
      expect(typeof e.lr).toBe('number');
    });
    expect(metrics.test.rows).toBe(30);
    expect(metrics.test.accuracy).toBeGreaterThanOrEqual(0);
    expect(metrics.test.accuracy).toBeLessThanOrEqual(1);

    const config = JSON.parse(readFileSync(join(out, 'iris/1/config.json'), 'utf8'));
    expect(config).toMatchObject({
      format: 'normserve.model/v1',
      name: 'iris',
      task: 'classification',
      input_shape: [4],
      labels: ['0', '1', '2'],
    });
    expect(config.training.test_accuracy).toBe(metrics.test.accuracy);

    const second = trainCli(['--config', IRIS_CONFIG, '--epochs', '2', '--out', out]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toContain('(version 2)');
    expect(listTree(join(out, 'iris'))).toEqual([
      '1',
      '1/config.json',
      '1/metrics.json',
      '1/model.safetensors',
      '2',
      '2/config.json',
      '2/metrics.json',
      '2/model.safetensors',
    ]);
    // Same config, data and seed in another process: the same weights, byte for byte.
    const weights = (v: number) => readFileSync(join(out, `iris/${v}/model.safetensors`));
    expect(weights(2).equals(weights(1))).toBe(true);
  });

  it('says when each epoch leaves out a one-row last batch, and that there was no validation (PyTorch users expect an error there)', () => {
    const out = makeTempDir('cli-repo');
    // 150 rows: 30 test, no validation, 120 train; batches of 119 leave one row a BatchNorm1d
    // cannot train on.
    const config = irisConfigFile(inputs, 'iris-no-validation.json', (c) => {
      (c.data as { validation_fraction?: number }).validation_fraction = 0;
    });
    const result = trainCli([
      '--config',
      config,
      '--epochs',
      '1',
      '--batch-size',
      '119',
      '--out',
      out,
    ]);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toContain(
      'note: each epoch leaves out its last batch, 1 of the 120 train rows (batch_size 119; shuffled, so other rows each epoch): a BatchNorm in training mode would get one value per channel from it, which PyTorch refuses',
    );
    expect(result.stdout).toMatch(/^best epoch: none \(no validation rows\)$/m);
  });

  it('says when the version it wrote is not served: the active-version record names another', () => {
    const out = makeTempDir('cli-repo');
    const first = trainCli(['--config', IRIS_CONFIG, '--epochs', '1', '--out', out]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).not.toContain('is not served');
    // What a recalibration with activate=false (or an operator's activation) leaves.
    writeFileSync(
      join(out, 'iris', 'active-version.json'),
      '{"version":1,"note":"pinned before publishing an inactive version"}\n',
    );
    const second = trainCli(['--config', IRIS_CONFIG, '--epochs', '1', '--out', out]);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout).toContain(
      `note: version 2 is not served: ${relative(ROOT, join(out, 'iris', 'active-version.json'))} names version 1 ("pinned before publishing an inactive version"); to serve it, activate it (POST /v1/models/iris/versions/2:activate on a server of this repository), or remove that file to serve the highest version`,
    );
    // h248: a record that cannot be read serves nothing new either; train said nothing.
    writeFileSync(join(out, 'iris', 'active-version.json'), 'garbage\n');
    const third = trainCli(['--config', IRIS_CONFIG, '--epochs', '1', '--out', out]);
    expect(third.status, third.stderr).toBe(0);
    expect(third.stdout).toMatch(
      /\nnote: version 3 is not served: iris\/active-version\.json: not valid JSON \(.*\); a server of this repository keeps the version it served \(none after a restart\) until one is activated: activate this one \(POST \/v1\/models\/iris\/versions\/3:activate\), or, if that file is damaged, remove it to serve the highest version\n/,
    );
  });
});

describe('train CLI: an --out that is a model’s or a version’s directory', () => {
  it('is refused before training, naming the repository to give instead; nothing is written', () => {
    // h248: `--out <repo>/digits --name 2` wrote <repo>/digits/2/1, a broken version 2 of digits.
    const repository = makeTempDir('cli-out-model');
    copyBundledModel('digits', repository);
    const before = listTree(repository);
    for (const [out, what] of [
      [join(repository, 'digits'), "a model's directory (its version 1 holds a checkpoint)"],
      [join(repository, 'digits', '1'), "a model version's directory (it holds model.safetensors)"],
    ] as const) {
      const result = trainCli(['--data', IRIS_DATA, '--out', out, '--name', '2', '--epochs', '1']);
      expect(result.stderr).toBe(
        `train: --out ${out}: it is ${what}, not a model repository: a new version goes to <repository>/<name>/<version>; give the repository (--out ${repository}) and the model's name (--name)\n`,
      );
      expect(result.status).toBe(1);
    }
    expect(listTree(repository)).toEqual(before);
  });

  it('a directory holding a training config named config.json is a repository as any other', () => {
    // h250: any config.json made `--out .` a "model version's directory".
    const out = makeTempDir('cli-out-config');
    writeFileSync(join(out, 'config.json'), readFileSync(join(ROOT, IRIS_CONFIG)));
    const result = trainCli(['--data', IRIS_DATA, '--out', out, '--epochs', '1', '--no-progress']);
    expect(result.status, result.stderr).toBe(0);
    expect(listTree(out)).toContain('iris/1/model.safetensors');
  });
});

describe('train CLI: a version that changes the model’s contract', () => {
  it('says so against the version before it: task, labels, input shape', () => {
    // h248: a regression version was published over classification ones without a word.
    const out = makeTempDir('cli-contract');
    const base = ['--data', IRIS_DATA, '--name', 'iris', '--epochs', '1', '--no-progress'];
    const first = trainCli([...base, '--out', out]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).not.toContain('changes what its clients see');
    const same = trainCli([...base, '--out', out]);
    expect(same.stdout).not.toContain('changes what its clients see');
    const regression = trainCli([
      ...base,
      ...['--task', 'regression', '--label-column', 'petal_width', '--out', out],
    ]);
    expect(regression.status, regression.stderr).toBe(0);
    expect(regression.stdout).toMatch(
      /\nnote: version 3 of "iris" changes what its clients see, against version 2: task classification → regression(; input shape \[4\] → \[\d\])?; a server serves it in place of the earlier ones once it is the active version \(without an active-version record, at once: it is the highest\)\n/,
    );
    // Labels and input shape: two classes of three, then one feature fewer.
    const rows = readFileSync(IRIS_DATA, 'utf8').trim().split('\n').slice(1);
    const twoClasses = writeTempFile(
      inputs,
      'iris-two.csv',
      `${irisHeader}\n${rows.filter((r) => !r.endsWith(',2')).join('\n')}\n`,
    );
    const threeFeatures = writeTempFile(
      inputs,
      'iris-three.csv',
      `${irisHeader.split(',').slice(1).join(',')}\n${rows.map((r) => r.split(',').slice(1).join(',')).join('\n')}\n`,
    );
    const other = makeTempDir('cli-contract-2');
    const run = (data: string) =>
      trainCli([
        '--data',
        data,
        '--name',
        'iris',
        '--epochs',
        '1',
        '--no-progress',
        '--out',
        other,
      ]);
    expect(run(IRIS_DATA).status).toBe(0);
    expect(run(twoClasses).stdout).toContain(
      'changes what its clients see, against version 1: labels 0, 1, 2 → 0, 1;',
    );
    expect(run(threeFeatures).stdout).toContain(
      'changes what its clients see, against version 2: labels 0, 1 → 0, 1, 2; input shape [4] → [3];',
    );
  });
});
