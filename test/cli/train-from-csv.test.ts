/**
 * A user's own CSV in one command: `npm run train -- --data <csv> --label-column <column>`, no
 * config, on data no config of the project describes (data/penguins: the species, a string
 * label, from four measurements; body mass in grams, a regression), then served by the real app
 * and asked for raw rows through TF Serving REST and the Open Inference Protocol v2.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModelDirectory } from '../../src/service/index.js';
import { makeTestApp, type TestApp } from '../helpers/app.js';
import { expectRelClose } from '../helpers/compare.js';
import { nodeArgs } from '../helpers/entries.js';
import { listTree, makeTempDir, removeTempDirs } from '../helpers/temp-files.js';
import { FUSION_RTOL } from '../helpers/tolerances.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PENGUINS = 'data/penguins/penguins.csv';
const BODY_MASS = 'data/penguins/body-mass.csv';

afterAll(removeTempDirs);

/**
 * Runs the checkout's train CLI from `cwd`, or `script` through tsx (a copy of the checkout: its
 * own src/, found by import.meta.url).
 */
function trainCli(args: readonly string[], cwd = ROOT, script?: string) {
  const result = spawnSync(
    process.execPath,
    [
      ...(script === undefined ? nodeArgs('src/cli/train.ts') : ['--import', 'tsx', script]),
      '--no-progress',
      ...args,
    ],
    {
      cwd,
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  expect(result.status, result.stderr).toBe(0);
  return result;
}

/** The CSV's rows as [features, label] (label = the named column, features = the others). */
function csvRows(path: string, label: string): { x: number[][]; y: string[] } {
  const [header, ...lines] = readFileSync(join(ROOT, path), 'utf8').trim().split('\n');
  const columns = header!.split(',');
  const at = columns.indexOf(label);
  const cells = lines.map((l) => l.split(','));
  return {
    x: cells.map((c) => c.filter((_, i) => i !== at).map(Number)),
    y: cells.map((c) => c[at]!),
  };
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

describe('train on a new CSV with --data and --label-column only, serve it, predict raw rows', () => {
  const repository = makeTempDir('own-csv-repo');
  let served: TestApp;
  beforeAll(async () => {
    trainCli(['--data', PENGUINS, '--label-column', 'species', '--out', repository]);
    trainCli([
      '--data',
      BODY_MASS,
      '--label-column',
      'body_mass_g',
      '--task',
      'regression',
      '--out',
      repository,
    ]);
    served = await makeTestApp({ repository });
  }, 240_000);
  afterAll(() => served?.close());

  it('classification from a string label: widths, labels, name and description from the data', () => {
    expect(listTree(repository)).toContain('penguins/1/model.safetensors');
    const config = json(join(repository, 'penguins/1/config.json'));
    expect(config).toMatchObject({
      name: 'penguins',
      task: 'classification',
      input_shape: [4],
      labels: ['Adelie', 'Chinstrap', 'Gentoo'],
      description: 'Trained on penguins.csv (342 rows): "species" from 4 features, 3 classes',
    });
    // The default network: two Linear → BatchNorm1d → ReLU → Dropout blocks, then the classes.
    expect(config.layers.map((l: { type: string }) => l.type)).toEqual([
      'linear',
      'batchnorm1d',
      'relu',
      'dropout',
      'linear',
      'batchnorm1d',
      'relu',
      'dropout',
      'linear',
    ]);
    expect(config.layers.filter((l: { type: string }) => l.type === 'linear')).toEqual([
      { type: 'linear', in_features: 4, out_features: 128, bias: true },
      { type: 'linear', in_features: 128, out_features: 64, bias: true },
      { type: 'linear', in_features: 64, out_features: 3, bias: true },
    ]);
    expect(config.training).toMatchObject({
      feature_names: ['bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g'],
      label_column: 'species',
    });
    const metrics = json(join(repository, 'penguins/1/metrics.json'));
    expect(metrics.test.rows).toBe(68);
    expect(metrics.test.accuracy).toBeGreaterThanOrEqual(0.95);
  });

  it('serves the classifier: raw rows through TF Serving REST and OIP give the species', async () => {
    const { x, y } = csvRows(PENGUINS, 'species');
    // One row of each species (the file is ordered Adelie, Gentoo, Chinstrap).
    const picks = [0, 200, 300];
    const rows = picks.map((i) => x[i]!);
    const rest = await served.app.inject({
      method: 'POST',
      url: '/v1/models/penguins:predict',
      payload: { instances: rows },
    });
    expect(rest.statusCode, rest.body).toBe(200);
    const body = rest.json();
    expect(body.labels).toEqual(picks.map((i) => y[i]));
    for (const p of body.predictions)
      expect(p.reduce((a: number, b: number) => a + b, 0)).toBeCloseTo(1, 5);

    const oip = await served.app.inject({
      method: 'POST',
      url: '/v2/models/penguins/infer',
      payload: {
        inputs: [{ name: 'input', shape: [3, 4], datatype: 'FP32', data: rows.flat() }],
        outputs: [{ name: 'label' }, { name: 'probabilities' }],
      },
    });
    expect(oip.statusCode, oip.body).toBe(200);
    const outputs = oip.json().outputs;
    expect(outputs[0]).toEqual({
      name: 'label',
      datatype: 'BYTES',
      shape: [3],
      data: picks.map((i) => y[i]),
    });
    expect(outputs[1].data).toEqual(body.predictions.flat());
  });

  it('regression: one output, no labels, targets standardized in training and folded back', async () => {
    const config = json(join(repository, 'body-mass/1/config.json'));
    expect(config).toMatchObject({ name: 'body-mass', task: 'regression', input_shape: [3] });
    expect(config.labels).toBeUndefined();
    expect(config.layers.at(-1)).toEqual({
      type: 'linear',
      in_features: 64,
      out_features: 1,
      bias: true,
    });
    expect(config.training.recipe).toBeDefined();
    const metrics = json(join(repository, 'body-mass/1/metrics.json'));
    // The test MSE is in grams² (the folded model answers in grams): RMSE and R² agree with it.
    expect(metrics.test.rmse).toBeCloseTo(Math.sqrt(metrics.test.loss), 6);
    expect(metrics.test.r2).toBeGreaterThan(0.7);
    expect(metrics.test.rmse).toBeLessThan(450);
    expect(metrics.test.accuracy).toBeNull();
  });

  it('serves the regression: predictions are values in grams through both APIs', async () => {
    const { x, y } = csvRows(BODY_MASS, 'body_mass_g');
    const picks = [0, 200, 300];
    const rows = picks.map((i) => x[i]!);
    const rest = await served.app.inject({
      method: 'POST',
      url: '/v1/models/body-mass:predict',
      payload: { instances: rows },
    });
    expect(rest.statusCode, rest.body).toBe(200);
    const body = rest.json();
    expect(body.labels).toBeUndefined();
    expect(body.predictions).toHaveLength(3);
    body.predictions.forEach((p: number[], k: number) => {
      expect(p).toHaveLength(1);
      // Within 700 g of the measured mass (the test RMSE is ~340 g; these rows were seen or not).
      expect(Math.abs(p[0]! - Number(y[picks[k]!]))).toBeLessThan(700);
    });

    const oip = await served.app.inject({
      method: 'POST',
      url: '/v2/models/body-mass/infer',
      payload: { inputs: [{ name: 'input', shape: [3, 3], datatype: 'FP32', data: rows.flat() }] },
    });
    expect(oip.statusCode, oip.body).toBe(200);
    expect(oip.json().outputs).toEqual([
      { name: 'predictions', datatype: 'FP32', shape: [3, 1], data: body.predictions.flat() },
    ]);
    const meta = await served.app.inject({ method: 'GET', url: '/v2/models/body-mass' });
    expect(meta.json().outputs).toEqual([
      { name: 'predictions', datatype: 'FP32', shape: [-1, 1] },
    ]);

    // The unfused reference path (every layer in eval mode) gives the same grams.
    const model = await openModelDirectory(join(repository, 'body-mass'));
    const unfused = model.predict(rows, { fused: false });
    expectRelClose(body.predictions.flat(), unfused.outputs, FUSION_RTOL, 'fused vs unfused grams');
  });
});

describe('--print-config', () => {
  it('prints the config it would use; training from that file, in another directory, gives the same weights', () => {
    const out = makeTempDir('print-config');
    const printed = trainCli([
      '--data',
      PENGUINS,
      '--label-column',
      'species',
      '--hidden',
      '16',
      '--norm',
      'layernorm',
      '--dropout',
      '0',
      '--epochs',
      '3',
      '--print-config',
    ]);
    expect(printed.stderr).toBe('');
    const config = JSON.parse(printed.stdout);
    expect(config).toMatchObject({
      name: 'penguins',
      task: 'classification',
      seed: 0,
      // Absolute: --data was relative to the current directory, where the file will not be read.
      data: { path: join(ROOT, PENGUINS), label_column: 'species', test_split: { fraction: 0.2 } },
      layers: [
        { type: 'linear', in_features: 4, out_features: 16, bias: true },
        { type: 'layernorm', normalized_shape: [16], eps: 1e-5, elementwise_affine: true },
        { type: 'relu' },
        { type: 'linear', in_features: 16, out_features: 3, bias: true },
      ],
      training: { epochs: 3, batch_size: 64, optimizer: { type: 'adamw', lr: 0.001 } },
    });
    expect(config.architecture).toBeUndefined();
    expect(listTree(out)).toEqual([]);

    const file = join(out, 'penguins.json');
    writeFileSync(file, printed.stdout);
    const fromFlags = trainCli([
      ...['--data', PENGUINS, '--label-column', 'species', '--hidden', '16', '--norm'],
      ...['layernorm', '--dropout', '0', '--epochs', '3', '--out', join(out, 'a')],
    ]);
    // Run from the directory the file is in, not the checkout's (data/penguins is not there).
    const fromFile = trainCli(['--config', file, '--out', join(out, 'b')], out);
    const sha = (text: string) => /model\.safetensors sha256 ([0-9a-f]{64})/.exec(text)?.[1];
    expect(sha(fromFlags.stdout)).toMatch(/^[0-9a-f]{64}$/);
    expect(sha(fromFile.stdout)).toBe(sha(fromFlags.stdout));
    // The same config.json but for the record of the data's path, as each run was given it.
    const a = JSON.parse(readFileSync(join(out, 'a/penguins/1/config.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(out, 'b/penguins/1/config.json'), 'utf8'));
    expect(a.training.data_path).toBe(PENGUINS);
    expect(b.training.data_path).toBe(join(ROOT, PENGUINS));
    b.training.data_path = a.training.data_path;
    expect(b).toEqual(a);
  }, 120_000);

  it('refuses, as train would, a config whose layers do not fit the data (review60: exit 0)', () => {
    const args = ['--config', 'configs/iris-mlp.json', '--data', 'data/digits/digits.csv'];
    const refused = (more: string[]) =>
      spawnSync(
        process.execPath,
        [...nodeArgs('src/cli/train.ts'), '--no-progress', ...args, ...more],
        {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
    const printed = refused(['--print-config']);
    expect(printed.status).toBe(1);
    expect(printed.stdout).toBe('');
    expect(printed.stderr).toBe(
      'train: configs/iris-mlp.json: layers[0] (linear): in_features 4 does not match the previous width 64\n',
    );
    const trained = refused(['--out', makeTempDir('print-config-refused')]);
    expect(trained.stderr).toBe(printed.stderr);
  });
});

describe('the default --out', () => {
  it("writes into the checkout's models/ and says so in the summary", () => {
    // A copy of the checkout (src/ and models/, node_modules linked), so the real one stays clean.
    const checkout = makeTempDir('checkout');
    cpSync(join(ROOT, 'src'), join(checkout, 'src'), { recursive: true });
    mkdirSync(join(checkout, 'models'));
    symlinkSync(join(ROOT, 'node_modules'), join(checkout, 'node_modules'));
    writeFileSync(join(checkout, 'package.json'), readFileSync(join(ROOT, 'package.json')));
    const result = trainCli(
      ['--data', join(ROOT, 'data/iris/iris.csv'), '--epochs', '1', '--name', 'iris-own'],
      checkout,
      'src/cli/train.ts',
    );
    expect(listTree(join(checkout, 'models'))).toContain('iris-own/1/model.safetensors');
    expect(result.stdout).toContain(
      "note: models/iris-own/1 is in this checkout's model repository: npm start serves it, npm test ignores it, git lists it as untracked",
    );

    const elsewhere = makeTempDir('elsewhere');
    const other = trainCli([
      ...['--data', join(ROOT, 'data/iris/iris.csv'), '--epochs', '1'],
      ...['--out', elsewhere],
    ]);
    expect(other.stdout).not.toContain('note:');
  }, 120_000);
});
