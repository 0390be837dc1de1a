#!/usr/bin/env node
/**
 * The training job: `npm run train -- --config configs/<file>.json [flags]`. Flags override the
 * config. Everything is validated before training starts and the checkpoint is published
 * atomically at the end, so bad input or an interrupted run writes nothing.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import { NormserveError } from '../errors/index.js';
import { loadModelDirectory, publishCheckpoint } from '../service/index.js';
import { loadCsvDataset, parseTrainingConfig, train } from '../training/index.js';
import { runCli } from './cli-errors.js';

const number =
  (flag: string, integer = false) =>
  (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(
        `${flag} needs ${integer ? 'an integer' : 'a number'}, got "${value}"`,
      );
    }
    return n;
  };

interface Flags {
  config: string;
  data?: string;
  labelColumn?: string;
  out: string;
  name?: string;
  seed?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  optimizer?: 'adamw' | 'adam' | 'sgd';
  init?: string;
  shuffle: boolean;
  patience?: number;
  progress: boolean;
}

/** Writes flags into the raw config before validation, so flags are checked like the file. */
function applyFlags(raw: Record<string, unknown>, flags: Flags): Record<string, unknown> {
  const config = structuredClone(raw) as Record<string, Record<string, unknown>>;
  config.data ??= {};
  config.training ??= {};
  const training = config.training;
  if (flags.data !== undefined) config.data.path = flags.data;
  if (flags.labelColumn !== undefined) config.data.label_column = flags.labelColumn;
  if (flags.name !== undefined) (config as Record<string, unknown>).name = flags.name;
  if (flags.seed !== undefined) (config as Record<string, unknown>).seed = flags.seed;
  if (flags.epochs !== undefined) training.epochs = flags.epochs;
  if (flags.batchSize !== undefined) training.batch_size = flags.batchSize;
  if (flags.patience !== undefined) training.patience = flags.patience;
  if (!flags.shuffle) training.shuffle = false;
  let optimizer = (training.optimizer ?? { type: 'adamw' }) as Record<string, unknown>;
  if (flags.optimizer !== undefined && flags.optimizer !== optimizer.type) {
    // A different optimizer starts from its own defaults: lr carries over, weight decay takes the
    // new optimizer's default unless --weight-decay gives it.
    optimizer = {
      type: flags.optimizer,
      ...(optimizer.lr !== undefined ? { lr: optimizer.lr } : {}),
    };
  }
  if (flags.lr !== undefined) optimizer.lr = flags.lr;
  if (flags.weightDecay !== undefined) optimizer.weight_decay = flags.weightDecay;
  training.optimizer = optimizer;
  return config;
}

async function main(argv: readonly string[]): Promise<void> {
  const program = new Command('train')
    .description('Train a normserve model and publish it as the next version in a model repository')
    .requiredOption('--config <file>', 'training config (JSON), e.g. configs/digits-mlp.json')
    .option('--data <csv>', 'CSV data file with a header row (overrides data.path)')
    .option('--label-column <name>', 'label column (overrides data.label_column)')
    .option('--out <dir>', 'model repository to write into', 'models')
    .option('--name <name>', 'model name (overrides name)')
    .option('--seed <n>', 'random seed', number('--seed', true))
    .option('--epochs <n>', 'epochs', number('--epochs', true))
    .option('--batch-size <n>', 'mini-batch size', number('--batch-size', true))
    .option('--lr <x>', 'learning rate (0 allowed)', number('--lr'))
    .option('--weight-decay <x>', 'weight decay', number('--weight-decay'))
    .addOption(new Option('--optimizer <type>', 'optimizer').choices(['adamw', 'adam', 'sgd']))
    .option('--init <model dir>', 'start from an existing checkpoint (<repo>/<name>[/<version>])')
    .option('--no-shuffle', 'keep the row order in every epoch')
    .option(
      '--patience <n>',
      'early stopping: epochs without a better validation loss',
      number('--patience', true),
    )
    .option('--no-progress', 'no progress bar even on a terminal')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  program.parse(argv, { from: 'node' });
  const flags = program.opts<Flags>();

  let rawText: string;
  try {
    rawText = await readFile(flags.config, 'utf8');
  } catch (e) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `cannot read training config ${flags.config}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(rawText);
  } catch (e) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `${flags.config}: not valid JSON (${(e as Error).message})`,
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new NormserveError('TRAINING_CONFIG_INVALID', `${flags.config}: must be a JSON object`);
  }
  const config = parseTrainingConfig(
    applyFlags(raw as Record<string, unknown>, flags),
    flags.config,
  );
  const initDir = flags.init ? await loadModelDirectory(flags.init) : undefined;
  const init = initDir?.checkpoint;
  // The exact version started from, even when --init named the model directory.
  const initSource = initDir ? `${initDir.root}/${initDir.name}/${initDir.version}` : undefined;
  const { data, sha256 } = await loadCsvDataset(
    config.data.path,
    config.data.label_column,
    init?.config.task ?? config.task,
    init?.config.labels,
  );

  const interactive = flags.progress && process.stderr.isTTY === true;
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
  const output = await train({
    config,
    source: flags.config,
    onStart: ({ rows }) =>
      log(
        `training ${config.name} on ${config.data.path}: ${rows.train} train, ${rows.validation} validation, ${rows.test} test rows (seed ${config.seed})${init ? `, starting from ${flags.init}` : ''}`,
      ),
    data,
    dataSha256: sha256,
    init: init ? { config: init.config, state: init.state, source: initSource } : undefined,
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
        `epoch ${m.epoch}/${epochs}  lr ${m.lr.toExponential(2)}  train loss ${fmt(m.train_loss)} acc ${fmt(m.train_accuracy)}  val loss ${fmt(m.val_loss)} acc ${fmt(m.val_accuracy)}  ${Math.round(m.duration_ms)} ms`,
      );
    },
  });
  const { version, path } = await publishCheckpoint(flags.out, output);
  const weights = await readFile(`${path}/model.safetensors`);
  const m = output.metrics;
  process.stdout.write(
    [
      `best epoch: ${m.best_epoch ?? '-'}${m.stopped_early ? ' (stopped early)' : ''}`,
      `test: ${m.test ? `accuracy ${fmt(m.test.accuracy)} loss ${fmt(m.test.loss)} on ${m.test.rows} rows` : 'no test rows'}`,
      `throughput: ${Math.round(m.samples_per_second)} samples/s, wall time ${(m.wall_time_ms / 1000).toFixed(1)} s`,
      `wrote ${path} (version ${version}), model.safetensors sha256 ${createHash('sha256').update(weights).digest('hex')}`,
      '',
    ].join('\n'),
  );
}

await runCli('train', () => main(process.argv));
