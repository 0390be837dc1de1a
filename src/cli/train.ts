#!/usr/bin/env node
/**
 * The training job: `npm run train -- --data my.csv --label-column y [flags]`, or
 * `npm run train -- --config configs/<file>.json [flags]`. Flags are written into the config
 * (the file's, or an empty one) and the result is parsed by the one training-config schema, so a
 * flag is checked exactly like the field it sets, and a bad value is reported under the flag's
 * name. What the config leaves open (name, task, description, layers) comes from the data.
 * Everything is validated before training starts and the checkpoint is published atomically at
 * the end, so bad input or an interrupted run writes nothing (SIGINT or SIGTERM during training
 * stops the progress bar and removes the --out directories the run created; during the publish it
 * also removes its temporary directory; a SIGKILL's goes with the next publish of the model).
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import cliProgress from 'cli-progress';
import { Option } from 'commander';
import { errnoOf, NormserveError, quote } from '../errors/index.js';
import { integerText } from '../http/schemas/common.js';
import {
  decimalText,
  loadModelDirectory,
  modelContentAt,
  nextVersionPath,
  publishCheckpoint,
  removeOwnPublishTemporariesSync,
  type Task,
  trainingInfoOf,
} from '../service/index.js';
import {
  architectureSchema,
  checkTrainingSetup,
  type InitialModel,
  loadCsvDataset,
  MAX_EPOCHS,
  OPTIMIZER_TYPES,
  parseTrainingConfig,
  readTrainingConfigJson,
  resolveTrainingConfig,
  type TrainingConfig,
  type TrainingMetrics,
  train,
  trainingConfigSchema,
} from '../training/index.js';
import { cliCommand, runCli } from './cli-errors.js';
import { checkInputFormat } from './input-format.js';
import { cleanUpOnSignal } from './on-signal.js';
import {
  checkNewDirectory,
  outputWriteFailed,
  prepareOutputDirectory,
  removeEmptyDirectoriesSync,
} from './output-path.js';
import { publishedAs, type StagedVersion, stagedVersion } from './staged-version.js';

/**
 * Only the syntax of a number, decimal as the server's settings and query parameters read it
 * (decimalText: Number() read "0x10" as 16); other text stays text, for the schema to refuse in
 * the words of every other flag (`--lr: expected a number ≥ 0, got "abc"`, not commander's
 * "option '--lr <x>' argument 'abc' is invalid": review60). Range and integrality are the
 * schema's to check.
 */
const number = (value: string): unknown => {
  const n = decimalText(value.trim());
  return typeof n === 'number' ? n : value;
};
/**
 * An integer flag's text as a number when it is written in decimal digits (integerText: the one
 * rule of the HTTP query parameters, which Number() alone breaks for "0x10", "1e1" and "0b1"), a
 * minus sign allowed;
 * other text stays text, for the schema to refuse quoting it (`--seed: expected an integer from 0
 * to 4294967295, got "1e20"`).
 */
const integer = (value: string): unknown => {
  const text = value.trim();
  // A minus sign kept, for the schema's own message (`--epochs -5`: at least 1, and why).
  const digits = text.startsWith('-') ? text.slice(1) : text;
  const n = integerText(digits);
  return typeof n !== 'number' ? text : digits === text ? n : -n;
};
/** `128,64` → [128, 64]; an empty list is a network with no hidden layer. */
const integerList = (value: string) =>
  value.trim() === '' ? [] : value.split(',').map((part) => integer(part));

/**
 * The schema's defaults (what an empty config means), quoted in --help and the optimizer a
 * bare --lr adjusts. */
const DEFAULTS = trainingConfigSchema.parse({ data: { path: '-' } });
const ARCHITECTURE = architectureSchema.parse({});
/** Each optimizer's defaults, from the same schema: lr and weight decay differ between them. */
const OPTIMIZER_DEFAULTS = OPTIMIZER_TYPES.map(
  (type) =>
    trainingConfigSchema.parse({ data: { path: '-' }, training: { optimizer: { type } } }).training
      .optimizer,
);
/** `0.001 with adamw or adam, 0.01 with sgd`: a field's default per optimizer, in --help. */
function perOptimizer(field: 'lr' | 'weight_decay'): string {
  const byValue = new Map<number, string[]>();
  for (const o of OPTIMIZER_DEFAULTS)
    byValue.set(o[field], [...(byValue.get(o[field]) ?? []), o.type]);
  return [...byValue].map(([value, types]) => `${value} with ${types.join(' or ')}`).join(', ');
}

/** A flag that sets one field of the training config. */
interface ConfigFlag {
  option: Option;
  /** Where its value goes in the config. */
  path: readonly string[];
}

const configFlag = (
  flags: string,
  description: string,
  path: readonly string[],
  parse?: (value: string) => unknown,
): ConfigFlag => {
  const option = new Option(flags, description);
  if (parse) option.argParser(parse);
  return { option, path };
};

const CONFIG_FLAGS: readonly ConfigFlag[] = [
  configFlag('--data <csv>', 'CSV data file with a header row (data.path)', ['data', 'path']),
  configFlag(
    '--label-column <name>',
    `the column to predict (data.label_column, default "${DEFAULTS.data.label_column}")`,
    ['data', 'label_column'],
  ),
  configFlag('--task <task>', 'classification (default) or regression (MSE, one numeric output)', [
    'task',
  ]),
  configFlag('--name <name>', 'model name (default: the data file name)', ['name']),
  configFlag('--description <text>', 'model description (default: from the data)', ['description']),
  configFlag('--seed <n>', `random seed (default ${DEFAULTS.seed})`, ['seed'], integer),
  configFlag(
    '--epochs <n>',
    `epochs, 1 to ${MAX_EPOCHS} (default ${DEFAULTS.training.epochs})`,
    ['training', 'epochs'],
    integer,
  ),
  configFlag(
    '--batch-size <n>',
    `mini-batch size (default ${DEFAULTS.training.batch_size})`,
    ['training', 'batch_size'],
    integer,
  ),
  configFlag(
    '--lr <x>',
    `learning rate, 0 allowed (default ${perOptimizer('lr')})`,
    ['training', 'optimizer', 'lr'],
    number,
  ),
  configFlag(
    '--weight-decay <x>',
    `weight decay (default ${perOptimizer('weight_decay')})`,
    ['training', 'optimizer', 'weight_decay'],
    number,
  ),
  configFlag(
    '--optimizer <type>',
    `adamw, adam or sgd (default ${DEFAULTS.training.optimizer.type})`,
    ['training', 'optimizer', 'type'],
  ),
  configFlag(
    '--patience <n>',
    `early stopping: epochs without a better validation loss (default ${DEFAULTS.training.patience ?? 'none: every epoch runs'})`,
    ['training', 'patience'],
    integer,
  ),
  configFlag('--no-shuffle', 'keep the row order in every epoch', ['training', 'shuffle']),
  configFlag(
    '--hidden <widths>',
    `hidden layer widths of the default network (default ${ARCHITECTURE.hidden.join(',')}); "" for none`,
    ['architecture', 'hidden'],
    integerList,
  ),
  configFlag('--norm <type>', `batchnorm, layernorm or none (default ${ARCHITECTURE.norm})`, [
    'architecture',
    'norm',
  ]),
  configFlag(
    '--dropout <p>',
    `dropout after each hidden block, 0 for none (default ${ARCHITECTURE.dropout})`,
    ['architecture', 'dropout'],
    number,
  ),
];

const ARCHITECTURE_FLAGS = CONFIG_FLAGS.filter((f) => f.path[0] === 'architecture');

interface Flags {
  config?: string;
  out?: string;
  init?: string;
  progress: boolean;
  printConfig: boolean;
}

/**
 * Refuses an --out that is a model's directory, or a version's, rather than a repository: `--out
 * models/digits --name 2` wrote models/digits/2/1, a version 2 of digits with no checkpoint of
 * its own, which every CLI and a starting server then read as a broken version (h248).
 */
async function refuseModelDirectoryAsRepository(out: string): Promise<void> {
  const content = await modelContentAt(out);
  if (content === undefined) return;
  const clean = resolve(out);
  const what =
    content.kind === 'version'
      ? `a model version's directory (it holds ${content.file})`
      : `a model's directory (its version ${content.version} holds a checkpoint)`;
  const repository = content.kind === 'version' ? dirname(dirname(clean)) : dirname(clean);
  const fromHere = relative(process.cwd(), repository);
  const shown = fromHere === '' ? '.' : fromHere.startsWith('..') ? repository : fromHere;
  throw new NormserveError(
    'OUTPUT_WRITE_FAILED',
    `--out ${out}: it is ${what}, not a model repository: a new version goes to <repository>/<name>/<version>; give the repository (--out ${shown}) and the model's name (--name)`,
  );
}

/** The checkout's own repository, which `npm start` serves and git tracks (models/digits/1). */
const CHECKOUT_MODELS = fileURLToPath(new URL('../../models', import.meta.url));
const DEFAULT_OUT = 'models';

type Raw = Record<string, unknown>;

function setPath(target: Raw, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    node[key] = typeof next === 'object' && next !== null && !Array.isArray(next) ? next : {};
    node = node[key] as Raw;
  }
  node[path.at(-1)!] = value;
}

/**
 * Writes the given flags into the raw config before validation. A different --optimizer starts
 * from that optimizer's defaults: lr carries over, weight decay takes the new optimizer's default
 * unless --weight-decay gives it.
 */
function applyFlags(raw: Raw, given: readonly { flag: ConfigFlag; value: unknown }[]): Raw {
  const config = structuredClone(raw);
  const setsOptimizer = given.some((g) => g.flag.path[1] === 'optimizer');
  if (setsOptimizer) {
    const current = (config.training as Raw | undefined)?.optimizer as Raw | undefined;
    const type = given.find((g) => g.flag.option.long === '--optimizer')?.value;
    if (current === undefined) {
      setPath(config, ['training', 'optimizer'], { type: DEFAULTS.training.optimizer.type });
    } else if (type !== undefined && type !== current.type) {
      setPath(config, ['training', 'optimizer'], {
        type,
        ...(current.lr !== undefined ? { lr: current.lr } : {}),
      });
    }
  }
  for (const { flag, value } of given) setPath(config, flag.path, value);
  return config;
}

type ModelConfig = InitialModel['config'];

/**
 * Whether a config's explicit `data.input_scaling` is what an --init checkpoint already applies
 * (its input_transform, kept as it is: its first layer was trained on it): `standard` when the
 * checkpoint has a fitted transform (the README fine-tune passes the config it was trained from),
 * `none` when it has none, `{shift, scale}` when its transform is that one on every feature.
 */
function scalingIsCheckpoints(
  scaling: TrainingConfig['data']['input_scaling'],
  transform: ModelConfig['input_transform'],
): boolean {
  if (scaling === 'standard') return transform !== undefined;
  if (scaling === 'none') return transform === undefined;
  const same = (values: readonly number[], value: number) =>
    values.every((v) => Math.fround(v) === Math.fround(value));
  return (
    transform !== undefined &&
    same(transform.shift, scaling.shift) &&
    same(transform.scale, scaling.scale)
  );
}

/**
 * What an --init checkpoint fixes and a run cannot change: its network (trained on, layer by
 * layer: the architecture flags and a config's `architecture` would be read by nothing), its task,
 * its input shape and its input scaling (its input_transform, which its first layer was trained
 * on). Asking for another is refused in one line naming every such flag and field, not silently
 * ignored.
 */
function checkInitFixes(
  given: readonly { flag: ConfigFlag; value: unknown }[],
  raw: Raw,
  parsed: TrainingConfig,
  flags: Flags,
  init: ModelConfig,
): void {
  const { layers } = parsed;
  const refused = given
    .filter(
      (g) =>
        ARCHITECTURE_FLAGS.includes(g.flag) ||
        (g.flag.option.long === '--task' && g.value !== init.task),
    )
    .map((g) => g.flag.option.long);
  const fields = [
    ...(raw.architecture !== undefined ? ['architecture'] : []),
    // The checkpoint's own layers (the README's fine-tune passes the config it was trained from)
    // are accepted; any other network is not what --init trains on.
    ...(layers !== undefined && !isDeepStrictEqual(layers, init.layers) ? ['layers'] : []),
    ...(raw.task !== undefined && raw.task !== init.task ? ['task'] : []),
    ...(raw.input_shape !== undefined &&
    JSON.stringify(raw.input_shape) !== JSON.stringify(init.input_shape)
      ? ['input_shape']
      : []),
    ...((raw.data as Raw | undefined)?.input_scaling !== undefined &&
    !scalingIsCheckpoints(parsed.data.input_scaling, init.input_transform)
      ? ['data.input_scaling']
      : []),
  ];
  const count = refused.length + fields.length;
  if (count === 0) return;
  const what = [
    ...(refused.length > 0 ? [refused.join(', ')] : []),
    ...(fields.length > 0 ? [`${flags.config}'s ${fields.map((f) => `"${f}"`).join(', ')}`] : []),
  ].join('; ');
  throw new NormserveError(
    'TRAINING_CONFIG_INVALID',
    `--init ${flags.init}: the checkpoint fixes the network (its layers are trained on), the task (${init.task}), the input shape [${init.input_shape.join(', ')}] and the input scaling (its ${init.input_transform ? 'input_transform' : 'absence of an input_transform'}), so ${what} cannot apply; remove ${count === 1 ? 'it' : 'them'}, or train without --init`,
  );
}

function summary(m: TrainingMetrics, task: Task): string {
  const fmt = (x: number) => x.toFixed(4);
  if (!m.test) return 'test: no test rows';
  if (task === 'classification') {
    return `test: accuracy ${fmt(m.test.accuracy ?? Number.NaN)} loss ${fmt(m.test.loss)} on ${m.test.rows} rows`;
  }
  const g = (x: number) => x.toPrecision(4);
  return `test: RMSE ${g(m.test.rmse ?? Number.NaN)} (MSE ${g(m.test.loss)})${m.test.r2 === undefined ? '' : ` R² ${fmt(m.test.r2)}`} on ${m.test.rows} rows`;
}

async function main(argv: readonly string[]): Promise<void> {
  const program = cliCommand('train')
    .description(
      'Train a normserve model on a CSV file and publish it as the next version in a model repository',
    )
    .option(
      '--config <file>',
      'training config (JSON) to start from, e.g. configs/digits-mlp.json; a relative data.path in it is read from the current directory, as --data is (npm run: the checkout’s root)',
    )
    .option('--out <dir>', `model repository to write into (default "${DEFAULT_OUT}")`)
    .option('--init <model dir>', 'start from an existing checkpoint (<repo>/<name>[/<version>])')
    .option(
      '--print-config',
      'print the resolved training config as JSON and exit (data.path absolute, so --config works with it from any directory)',
      false,
    )
    .option('--no-progress', 'no progress bar even on a terminal')
    .addHelpText(
      'after',
      '\nExamples:\n  npm run train -- --data my.csv --label-column y\n  npm run train -- --data my.csv --label-column price --task regression --hidden 64,32\n  npm run train -- --config configs/digits-mlp.json --out /tmp/models',
    );
  for (const flag of CONFIG_FLAGS) program.addOption(flag.option);
  program.parse(argv, { from: 'node' });
  const flags = program.opts<Flags>();
  const values = program.opts();
  const given = CONFIG_FLAGS.filter(
    (f) => program.getOptionValueSource(f.option.attributeName()) === 'cli',
  ).map((flag) => ({ flag, value: values[flag.option.attributeName()] }));

  if (flags.config === undefined && !given.some((g) => g.flag.option.long === '--data')) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      '--data: a CSV file is required (or --config with data.path), e.g. npm run train -- --data my.csv --label-column y',
    );
  }
  const raw = flags.config === undefined ? {} : await readTrainingConfigJson(flags.config);
  const source = flags.config ?? 'the flags';
  const pinned = given.find((g) => ARCHITECTURE_FLAGS.includes(g.flag));
  if (pinned && raw.layers !== undefined) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `${pinned.flag.option.long}: ${flags.config} pins the network in "layers"; --hidden, --norm and --dropout shape the default network only (remove "layers" from the config to use them)`,
    );
  }
  const parsed = parseTrainingConfig(applyFlags(raw, given), source, (path) => {
    const flag = given.find((g) => g.flag.path.every((key, i) => path[i] === key));
    if (!flag) return undefined;
    const rest = path.slice(flag.flag.path.length);
    return `${flag.flag.option.long}${rest.map((k) => `[${String(k)}]`).join('')}`;
  });

  const initDir = flags.init ? await loadModelDirectory(flags.init) : undefined;
  if (initDir?.versionNote) process.stderr.write(`train: ${initDir.versionNote}\n`);
  const init = initDir?.checkpoint;
  if (init) checkInitFixes(given, raw, parsed, flags, init.config);
  // The exact version started from, even when --init named the model directory.
  const initSource = initDir ? `${initDir.root}/${initDir.name}/${initDir.version}` : undefined;
  // A .json or .ndjson file is refused by its name, as predict and recalibrate refuse what they
  // do not read (train reads CSV only: a header names the label column).
  checkInputFormat('train', parsed.data.path, ['CSV']);
  const { data, sha256 } = await loadCsvDataset(
    parsed.data.path,
    parsed.data.label_column,
    init?.config.task ?? parsed.task,
    // The checkpoint's columns by name, as predict matches them: its input transform and first
    // layer are per column.
    init
      ? { labels: init.config.labels, featureNames: trainingInfoOf(init.config).featureNames }
      : {},
    given.some((g) => g.flag.option.long === '--label-column')
      ? 'named by --label-column'
      : typeof raw.data === 'object' && raw.data !== null && 'label_column' in raw.data
        ? `data.label_column of ${flags.config}`
        : 'the default; name the column to predict with --label-column',
  );
  const config = resolveTrainingConfig(parsed, data, init?.config);
  // A network that cannot be built is named by what shaped it: the config's layers, else the
  // architecture flags given (`--hidden: layers[0] (linear): …`, not "the flags: layers[0]").
  const shapedBy = given.filter((g) => ARCHITECTURE_FLAGS.includes(g.flag));
  const networkSource =
    raw.layers === undefined && shapedBy.length > 0
      ? shapedBy.map((g) => g.flag.option.long).join(', ')
      : (flags.config ?? 'the default network');
  const initModel = init
    ? { config: init.config, state: init.state, source: initSource }
    : undefined;
  if (flags.printConfig) {
    // What train checks before building anything: a printed config is one train takes.
    checkTrainingSetup(config, data, { init: initModel, source: networkSource });
    // data.path absolute: a relative one is read from the current directory (a --config file's
    // too), so the printed file would name other data, or none, from anywhere else.
    const printed = { ...config, data: { ...config.data, path: resolve(config.data.path) } };
    process.stdout.write(`${JSON.stringify(printed, null, 2)}\n`);
    return;
  }

  // Checked before the run: a training of minutes must not end in a write that could never work.
  const out = flags.out ?? DEFAULT_OUT;
  await refuseModelDirectoryAsRepository(out);
  // The directories this run creates (--out's, the model's), deepest first: a run that fails or is
  // interrupted removes them where they are still empty, so "nothing was written" is true.
  const created = await prepareOutputDirectory(out, '--out');
  const modelDir = join(out, config.name);
  const modelDirStats = await stat(modelDir).catch(() => undefined);
  if (modelDirStats === undefined) created.unshift(modelDir);
  const removeCreated = () => removeEmptyDirectoriesSync(created);
  try {
    await trainAndPublish();
  } catch (e) {
    removeCreated();
    throw e;
  }

  async function trainAndPublish(): Promise<void> {
    if (modelDirStats?.isDirectory() === false) {
      throw new NormserveError(
        'OUTPUT_WRITE_FAILED',
        `--out ${out}: cannot write there: ${modelDir} is a file, not a model directory`,
      );
    }
    // …and the directory the version will be: a file there (models/x/3) failed only after the run.
    const versionDir = await nextVersionPath(out, config.name).catch((e: unknown) => {
      throw outputWriteFailed(modelDir, e);
    });
    await checkNewDirectory(
      versionDir,
      `version ${basename(versionDir)} of model "${config.name}"`,
      '--out',
      out,
    );

    // A terminal that moves the cursor: TERM=dumb (Emacs' shell, some CI consoles) shows the bar's
    // escape sequences as text (review60).
    const interactive =
      flags.progress && process.stderr.isTTY === true && process.env.TERM !== 'dumb';
    const bar = interactive
      ? new cliProgress.SingleBar(
          {
            format:
              'epoch {epoch}/{epochs} |{bar}| {value}/{total} batches | loss {loss} | {speed} samples/s',
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const fmt = (x: number | null, digits = 4) => (x === null ? '-' : x.toFixed(digits));
    // A run that fails mid-epoch (TRAINING_DIVERGED) leaves the bar's line ended and the cursor shown;
    // so does one interrupted (Ctrl-C), which then says so and ends by its signal (130, 143).
    const interrupted = (signal: NodeJS.Signals) => {
      bar?.stop();
      removeCreated();
      log(`train: interrupted (${signal}) while training; nothing was written`);
    };
    const output = await cleanUpOnSignal(interrupted, () =>
      train({
        config,
        source: networkSource,
        onStart: ({ rows, droppedRowsPerEpoch }) => {
          log(
            `training ${config.name} (${config.task}) on ${config.data.path}: ${rows.train} train, ${rows.validation} validation, ${rows.test} test rows (seed ${config.seed})${init ? `, starting from ${flags.init}` : ''}`,
          );
          if (droppedRowsPerEpoch > 0)
            log(
              `note: each epoch leaves out its last batch, ${droppedRowsPerEpoch} of the ${rows.train} train rows (batch_size ${config.training.batch_size}; shuffled, so other rows each epoch): a BatchNorm in training mode would get one value per channel from it, which PyTorch refuses`,
            );
        },
        data,
        dataSha256: sha256,
        init: initModel,
        // Same bytes either way (nn/kernels.ts), only slower: say so once.
        onFallback: (reason) => log(`note: training on the JavaScript kernels: ${reason}`),
        ...(bar
          ? {
              onBatch: (p) => {
                if (p.batch === 1)
                  bar.start(p.batches, 0, {
                    epoch: p.epoch,
                    epochs: config.training.epochs,
                    loss: '-',
                    speed: '-',
                  });
                bar.update(p.batch, {
                  epoch: p.epoch,
                  loss: p.loss.toFixed(4),
                  speed: Math.round(p.samplesPerSecond),
                });
                if (p.batch === p.batches) bar.stop();
              },
            }
          : {}),
        onEpoch: (m, epochs) => {
          log(
            `epoch ${m.epoch}/${epochs}  lr ${m.lr.toExponential(2)}  train loss ${fmt(m.train_loss)}${m.train_accuracy === null ? '' : ` acc ${fmt(m.train_accuracy)}`}  val loss ${fmt(m.val_loss)}${m.val_accuracy === null ? '' : ` acc ${fmt(m.val_accuracy)}`}  ${Math.round(m.duration_ms)} ms`,
          );
        },
      }),
    ).finally(() => bar?.stop());
    // Interrupted while publishing, the run removes its temporary version directory before it ends,
    // and says whether its version was already in place (the rename done: published) or not, by
    // what the staged directory holds (publishedAs), whatever else is published meanwhile.
    let staged: StagedVersion | undefined;
    const { version, path, storageWarning, servedInstead, unreadableRecord, contractChange } =
      await cleanUpOnSignal(
        (signal) => {
          const published = staged && publishedAs(modelDir, staged);
          removeOwnPublishTemporariesSync(out, config.name);
          removeCreated();
          log(
            published === undefined || ('published' in published && published.published === false)
              ? `train: interrupted (${signal}) while publishing; nothing was written`
              : 'unknown' in published
                ? `train: interrupted (${signal}) while publishing; whether its version was published is not known (${published.unknown}): look for it in ${modelDir}`
                : `train: interrupted (${signal}) while publishing, after ${join(modelDir, published.published)} was in place: version ${published.published} is published`,
          );
        },
        () =>
          publishCheckpoint(out, output, (path) => {
            staged = stagedVersion(path);
          }),
      ).catch((e: unknown) => {
        // A file system error (disk full, permissions changed during the run): one line, no stack.
        // The path that failed: a rename's destination, else the file or directory being written.
        const failed = (e as { dest?: string }).dest ?? (e as { path?: string }).path ?? out;
        throw errnoOf(e) !== undefined ? outputWriteFailed(failed, e) : e;
      });
    const weights = await readFile(`${path}/model.safetensors`);
    const m = output.metrics;
    // Versions written into the checkout's own models/ are served by `npm start` and show up as
    // untracked files in git: say so, with the way to undo it. Tests and benches use only the bundled
    // versions (test/helpers/bundled-models.ts), so they do not see it.
    const inCheckout = resolve(out) === CHECKOUT_MODELS;
    process.stdout.write(
      [
        `best epoch: ${m.best_epoch ?? (m.rows.validation === 0 ? 'none (no validation rows)' : '-')}${m.stopped_early ? ' (stopped early)' : ''}${m.best_epoch !== null && m.best_epoch !== m.weights_epoch ? `; the weights are epoch ${m.weights_epoch}'s (the last; --patience keeps the best)` : ''}`,
        summary(m, config.task),
        `throughput: ${Math.round(m.samples_per_second)} samples/s, wall time ${(m.wall_time_ms / 1000).toFixed(1)} s`,
        `wrote ${path} (version ${version}), model.safetensors sha256 ${createHash('sha256').update(weights).digest('hex')}`,
        // Only without a record is the highest version served: one naming another version (an
        // operator's activation, a pin written before a recalibration) keeps this one unserved.
        ...(servedInstead
          ? [
              `note: version ${version} is not served: ${relative(process.cwd(), servedInstead.record) || servedInstead.record} names version ${servedInstead.version}${servedInstead.note ? ` (${quote(servedInstead.note)})` : ''}; to serve it, activate it (POST /v1/models/${config.name}/versions/${version}:activate on a server of this repository), or remove that file to serve the highest version`,
            ]
          : []),
        // An unreadable record serves nothing new: a server keeps what it served (none after a
        // restart) until a version is activated (h248: train said nothing).
        ...(unreadableRecord
          ? [
              `note: version ${version} is not served: ${unreadableRecord.reason}; a server of this repository keeps the version it served (none after a restart) until one is activated: activate this one (POST /v1/models/${config.name}/versions/${version}:activate), or, if that file is damaged, remove it to serve the highest version`,
            ]
          : []),
        ...(contractChange
          ? [
              `note: version ${version} of "${config.name}" changes what its clients see, against version ${contractChange.from}: ${contractChange.changes.join('; ')}; a server serves it in place of the earlier ones once it is the active version (without an active-version record, at once: it is the highest)`,
            ]
          : []),
        ...(inCheckout
          ? [
              `note: ${relative(process.cwd(), path) || path} is in this checkout's model repository: npm start serves it, npm test ignores it, git lists it as untracked; rm -r it to undo, or train with --out <dir> elsewhere`,
            ]
          : []),
        '',
      ].join('\n'),
    );
    // Published, but a crash may still undo it: said as what happened, and not a success (exit 1).
    if (storageWarning) {
      process.stderr.write(`train: ${storageWarning.message}\n`);
      process.exitCode = 1;
    }
  }
}

await runCli('train', () => main(process.argv));
