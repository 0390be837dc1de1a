import { setImmediate as nextTurn } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import { z } from 'zod';
import {
  buildSequential,
  type EpochMetrics,
  type InputTransform,
  type LayerSpec,
  MODEL_FORMAT,
  type ModelConfig,
  minimumTrainingBatchRows,
  networkFromCheckpoint,
  networkOutputWidth,
  type TrainingMetrics,
  trainingBatchProblem,
} from '../checkpoint/index.js';
import { NormserveError, quoteList } from '../errors/index.js';
import {
  applyFeatureTransform,
  clipGradNorm,
  cloneStateDict,
  createKernels,
  crossEntropy,
  type KernelsName,
  type LrSchedule,
  learningRateAt,
  mseLoss,
  numelOf,
  Rng,
  referenceKernels,
  type StateDict,
  StepArray,
  Tensor,
} from '../nn/index.js';
import { buildOptimizer } from './build-optimizer.js';
import { type LabeledDataset, selectRows } from './dataset.js';
import { argmaxRow, type Evaluation, evaluate } from './evaluate.js';
import { fitQuality } from './fit-quality.js';
import { type ResolvedTrainingConfig, resolveTrainingConfig } from './resolve-config.js';
import { splitRows } from './split.js';
import { fitStandardScaler } from './standard-scaler.js';
import {
  applyTargetScale,
  checkTargetScalable,
  fitTargetScale,
  standardizeTargets,
} from './target-scaling.js';
import type { TrainingConfig } from './training-config.js';
import { checkWasmTrainingMemory } from './wasm-memory.js';

export interface BatchProgress {
  epoch: number;
  batch: number;
  batches: number;
  loss: number;
  samplesPerSecond: number;
}

/** A checkpoint to start from (fine-tuning or resuming). */
export interface InitialModel {
  config: ModelConfig;
  state: StateDict;
  /** Where it came from (e.g. `models/digits/1`), recorded in the new config's `training`. */
  source?: string | undefined;
}

export interface TrainInput {
  /** Resolved here (resolveTrainingConfig) when it leaves name, task or layers to the data. */
  config: TrainingConfig | ResolvedTrainingConfig;
  data: LabeledDataset;
  dataSha256: string;
  init?: InitialModel | undefined;
  onBatch?: (progress: BatchProgress) => void;
  onEpoch?: (metrics: EpochMetrics, epochs: number) => void;
  /** Called once everything is validated and split, just before the first batch. */
  onStart?: (info: {
    rows: TrainingMetrics['rows'];
    batchesPerEpoch: number;
    /** Rows of the trailing batch each epoch leaves out (too few for a BatchNorm); 0 for none. */
    droppedRowsPerEpoch: number;
  }) => void;
  /** Names the config in error messages (e.g. its file path). */
  source?: string;
  /** Clock for durations (injectable so tests need no timers). */
  now?: () => number;
  /** Longest run of steps between two turns of the event loop, in ms (YIELD_EVERY_MS). */
  yieldEveryMs?: number;
  /**
   * Where the arithmetic runs (nn/kernels.ts): `wasm` (default; WebAssembly SIMD) or `js` (the
   * plain-JavaScript reference). Both give the same bytes; wasm falls back to js on a runtime
   * without WebAssembly SIMD, and `onFallback` hears why.
   */
  engine?: KernelsName;
  onFallback?: (reason: string) => void;
}

export interface TrainOutput {
  config: ModelConfig;
  state: StateDict;
  metrics: TrainingMetrics;
}

/** config.json's free-form `training.feature_names`, when it is a list of names. */
const featureNamesSchema = z.array(z.string());

/** Independent random streams derived from the seed, so adding a draw to one leaves the others. */
function streams(seed: number): { split: Rng; init: Rng; shuffle: Rng; dropout: Rng } {
  return {
    split: new Rng(seed ^ 0x5a17),
    init: new Rng(seed),
    shuffle: new Rng(seed ^ 0x5eed5),
    dropout: new Rng(seed ^ 0xd20f),
  };
}

function schedule(config: ResolvedTrainingConfig): LrSchedule {
  const s = config.training.lr_schedule;
  switch (s.type) {
    case 'constant':
      return { type: 'constant' };
    case 'cosine':
      return { type: 'cosine', etaMin: s.eta_min };
    case 'one_cycle':
      return {
        type: 'one_cycle',
        pctStart: s.pct_start,
        divFactor: s.div_factor,
        finalDivFactor: s.final_div_factor,
      };
  }
}

/**
 * A run whose loss stopped being finite: NaN and ±Infinity do not come back (every later step
 * reads them), and a checkpoint of them would be published only to fail to load. Named by where
 * it happened, with the usual causes.
 */
function diverged(what: string, config: ResolvedTrainingConfig): NormserveError {
  const t = config.training;
  return new NormserveError(
    'TRAINING_DIVERGED',
    `training diverged: ${what}; nothing was written. Try a smaller learning rate (lr ${t.optimizer.lr} with ${t.optimizer.type})${t.grad_clip_norm === null ? ' or gradient clipping (training.grad_clip_norm)' : ''}`,
  );
}

/** The first non-finite value of a state dict's float tensors, by tensor name and index. */
function firstNonFinite(state: StateDict): { name: string; index: number } | undefined {
  for (const [name, value] of state) {
    if (!(value instanceof Tensor)) continue;
    const data = value.data;
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i]!)) return { name, index: i };
    }
  }
  return undefined;
}

/**
 * What train() checks of a resolved config against its data before anything is built or
 * allocated: the input shape against the data's width, the init checkpoint's feature columns, the
 * layer chain's output against the task and classes, regression target scaling, and the batch
 * size against the BatchNorms. `train --print-config` runs it too, so that a config it prints is
 * one train takes (review60). Returns what training goes on with.
 */
export function checkTrainingSetup(
  config: ResolvedTrainingConfig,
  data: LabeledDataset,
  input: Pick<TrainInput, 'init' | 'source'>,
): { minimumBatchRows: number; scaleTargets: boolean } {
  const task = config.task;
  const layers: LayerSpec[] = config.layers;
  const inputShape = config.input_shape;
  if (numelOf(inputShape) !== data.width) {
    // With an init checkpoint the shape is the checkpoint's (resolveTrainingConfig): name it.
    const where = input.init
      ? `the init checkpoint${input.init.source ? ` ${input.init.source}` : ''}: `
      : input.source
        ? `${input.source}: `
        : '';
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `${where}input_shape [${inputShape.join(', ')}] holds ${numelOf(inputShape)} values but the data has ${data.width} feature columns`,
    );
  }
  // The checkpoint's input transform and first layer are per column: data in another column order
  // (loadCsvDataset's `featureNames` puts a CSV in the checkpoint's) would train on the wrong ones.
  const initFeatures = featureNamesSchema.safeParse(
    input.init?.config.training?.feature_names,
  ).data;
  if (initFeatures && !isDeepStrictEqual(initFeatures, data.featureNames)) {
    throw new NormserveError(
      'DATA_INVALID',
      `the data's feature columns ${quoteList(data.featureNames, 64)} are not those of the init checkpoint${input.init?.source ? ` ${input.init.source}` : ''}, ${quoteList(initFeatures, 64)}, in that order`,
    );
  }
  let outputWidth: number;
  try {
    outputWidth = networkOutputWidth(layers, inputShape, 'TRAINING_CONFIG_INVALID');
  } catch (e) {
    if (e instanceof NormserveError && input.source)
      throw new NormserveError(e.code, `${input.source}: ${e.message}`);
    throw e;
  }
  if (task === 'classification' && data.labels && outputWidth !== data.labels.length) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `the last layer has ${outputWidth} outputs but the data has ${data.labels.length} classes (${quoteList(data.labels)})`,
    );
  }
  if (task === 'regression' && outputWidth !== 1) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `a regression model needs 1 output, the last layer has ${outputWidth}`,
    );
  }
  const scaleTargets = task === 'regression' && config.data.target_scaling === 'standard';
  if (scaleTargets) checkTargetScalable(layers);
  // PyTorch's rule on train-mode batches (nn's minimumTrainingRows): a batch is fatal only where
  // a BatchNorm gets one value per channel — one row at a BatchNorm1d, or at a BatchNorm2d on
  // 1×1 maps; one row of [C, 8, 8] maps is 64 values per channel and trains as in PyTorch.
  const minimumBatchRows = minimumTrainingBatchRows(layers, inputShape);
  const batchProblem = trainingBatchProblem(layers, inputShape, config.training.batch_size);
  if (batchProblem !== undefined) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `batch_size ${config.training.batch_size}: ${batchProblem}; use a batch size of at least ${minimumBatchRows}`,
    );
  }
  return { minimumBatchRows, scaleTargets };
}

/**
 * Longest run of training steps between two turns of the event loop, in ms, with or without a
 * progress bar: a signal (Ctrl-C, SIGTERM) is handled in a turn. Without a bar the loop turned
 * once per epoch (~600 ms on the CNN config, minutes on a large CSV), and tsx's launcher, which
 * `npm run train` used, sent SIGKILL when its child had not taken the signal within about 60 ms:
 * the interrupted run's clean-up never ran (review53).
 */
const YIELD_EVERY_MS = 20;

/**
 * Trains a network as a PyTorch loop would: per epoch a seeded shuffle, mini-batches in train
 * mode (BatchNorm batch statistics, dropout masks), loss.backward, optional gradient clipping, the
 * LR for the step, optimizer.step; then eval-mode validation. With `patience`, training stops after
 * that many epochs without a lower validation loss and the best epoch's weights are kept.
 * Deterministic: the same config, data and seed give bit-identical tensors.
 */
export async function train(input: TrainInput): Promise<TrainOutput> {
  const { data } = input;
  const config = resolveTrainingConfig(input.config, data, input.init?.config);
  const now = input.now ?? (() => performance.now());
  const started = now();
  const task = config.task;
  const rng = streams(config.seed);
  const t = config.training;

  const layers: LayerSpec[] = config.layers;
  const inputShape = config.input_shape;
  const { minimumBatchRows, scaleTargets } = checkTrainingSetup(config, data, input);

  const split = splitRows(data.rows, config.data, rng.split, config.data.path);
  // The schema refuses patience with validation_fraction 0; a fraction that rounds to no rows of
  // a small file is found here.
  if (t.patience !== null && split.validation.length === 0) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      `training.patience ${t.patience}: early stopping compares validation losses, and data.validation_fraction ${config.data.validation_fraction} of ${split.train.length} rows gives no validation row: set a larger validation_fraction, or train without patience`,
    );
  }
  // The kernels before the network: on WebAssembly a network too large for its memory is refused
  // here, from the config, before its tensors are allocated (gigabytes, for nothing).
  const { kernels, fallback } = createKernels(input.engine ?? 'wasm');
  if (fallback !== undefined) input.onFallback?.(fallback);
  if (kernels.name === 'wasm') {
    checkWasmTrainingMemory(layers, inputShape, {
      // The largest batch formed: a batch size above the training rows (PyTorch's DataLoader
      // takes one) makes one batch of them all, not buffers for rows that do not exist (review60).
      batchSize: Math.min(t.batch_size, split.train.length),
      optimizer: t.optimizer,
      evaluationRows: [split.validation.length, split.test.length],
    });
  }
  const trainRaw = selectRows(data, split.train);
  const scaling = config.data.input_scaling;
  const transform: InputTransform | undefined = input.init
    ? input.init.config.input_transform
    : scaling === 'standard'
      ? fitStandardScaler(trainRaw.features, trainRaw.rows, data.width)
      : scaling === 'none'
        ? undefined
        : {
            shift: new Array<number>(data.width).fill(scaling.shift),
            scale: new Array<number>(data.width).fill(scaling.scale),
          };
  const targetScale = scaleTargets ? fitTargetScale(trainRaw.targets) : undefined;
  // Training and validation see standardized targets; the test rows keep y, and are evaluated
  // after the scale is folded into the network, as the served model will answer.
  const prepare = (indices: Int32Array, standardized: boolean) => {
    const subset = selectRows(data, indices);
    return {
      ...subset,
      features: applyFeatureTransform(subset.features, data.width, transform),
      ...(standardized && targetScale
        ? { targets: standardizeTargets(subset.targets, targetScale) }
        : {}),
    };
  };
  const trainSet = prepare(split.train, true);
  const validationSet = prepare(split.validation, true);
  const testSet = prepare(split.test, false);

  const network = input.init
    ? networkFromCheckpoint(input.init.config, input.init.state, input.init.config.name, {
        dropout: rng.dropout,
      })
    : buildSequential(layers, { init: rng.init, dropout: rng.dropout });
  // A checkpoint being fine-tuned outputs y: bring it to the standardized targets first.
  if (targetScale && input.init) applyTargetScale(network, targetScale, 'unfold');
  network.useKernels(kernels);
  // The loop is done with a step's tensors before the next step: layers reuse their arrays.
  network.reuseArrays();
  network.train();
  const optimizer = buildOptimizer(network.parameters(), t.optimizer, kernels);
  const baseLr = t.optimizer.lr;
  const lrSchedule = schedule(config);

  const batchSize = t.batch_size;
  const rows = trainSet.rows;
  // A trailing batch of fewer rows than that rule allows (one row, where a BatchNorm would get
  // one value per channel: PyTorch raises there, in the middle of its epoch) is dropped, as
  // DataLoader(drop_last=True) would drop that batch only; every other trailing batch runs, as
  // DataLoader(drop_last=False) runs it.
  const batchesPerEpoch =
    rows % batchSize !== 0 && rows % batchSize < minimumBatchRows
      ? Math.floor(rows / batchSize)
      : Math.ceil(rows / batchSize);
  const totalSteps = batchesPerEpoch * t.epochs;
  input.onStart?.({
    rows: { train: trainSet.rows, validation: validationSet.rows, test: testSet.rows },
    batchesPerEpoch,
    droppedRowsPerEpoch: rows - Math.min(rows, batchesPerEpoch * batchSize),
  });
  const order = Int32Array.from({ length: rows }, (_, i) => i);
  const batchRows = new StepArray();
  const batchTargets = new StepArray();
  const epochs: EpochMetrics[] = [];
  let best: { epoch: number; loss: number; state: StateDict } | undefined;
  let stoppedEarly = false;
  let step = 0;
  let samplesSeen = 0;
  const trainingStarted = now();
  const yieldEveryMs = input.yieldEveryMs ?? YIELD_EVERY_MS;
  let lastYield = performance.now();

  for (let epoch = 1; epoch <= t.epochs; epoch++) {
    const epochStarted = now();
    if (t.shuffle) rng.shuffle.shuffle(order);
    network.train();
    let lossSum = 0;
    let correct = 0;
    let seen = 0;
    let lr = baseLr;
    for (let b = 0; b < batchesPerEpoch; b++) {
      const start = b * batchSize;
      const end = Math.min(rows, start + batchSize);
      const n = end - start;
      // The batch's rows, in arrays reused every step (the network reuses its own; see above).
      const x = batchRows.take(n * data.width, kernels, true);
      const y = batchTargets.take(n, referenceKernels, true);
      const width = data.width;
      const features = trainSet.features;
      for (let i = 0; i < n; i++) {
        const r = order[start + i]!;
        // A loop, not subarray + set: rows are short and a view per row costs more than the copy.
        for (let j = 0, from = r * width, to = i * width; j < width; j++)
          x[to + j] = features[from + j]!;
        y[i] = trainSet.targets[r]!;
      }
      lr = learningRateAt(lrSchedule, baseLr, step, totalSteps);
      optimizer.lr = lr;
      optimizer.zeroGrad();
      const out = network.forward(new Tensor(x, [n, ...inputShape]));
      const { loss, grad } =
        task === 'classification'
          ? crossEntropy(out, y, t.label_smoothing)
          : mseLoss(out, new Tensor(y, [n, 1]));
      // One comparison a step, so the error can name the step (and no NaN is backpropagated).
      if (!Number.isFinite(loss)) {
        throw diverged(
          `the training loss is ${loss} at epoch ${epoch}, batch ${b + 1} of ${batchesPerEpoch} (step ${step + 1})`,
          config,
        );
      }
      network.backwardParameters(grad);
      if (t.grad_clip_norm !== null) clipGradNorm(optimizer.params, t.grad_clip_norm);
      optimizer.step();
      step++;
      lossSum += loss * n;
      seen += n;
      samplesSeen += n;
      if (task === 'classification') {
        for (let i = 0; i < n; i++) if (argmaxRow(out.data, i, out.shape[1]!) === y[i]) correct++;
      }
      if (input.onBatch) {
        const elapsed = (now() - trainingStarted) / 1000;
        input.onBatch({
          epoch,
          batch: b + 1,
          batches: batchesPerEpoch,
          loss,
          samplesPerSecond: elapsed > 0 ? samplesSeen / elapsed : 0,
        });
      }
      if (input.onBatch || performance.now() - lastYield >= yieldEveryMs) {
        await nextTurn();
        lastYield = performance.now();
      }
    }
    const validation: Evaluation | undefined =
      validationSet.rows > 0 ? evaluate(network, validationSet, task, inputShape) : undefined;
    const metrics: EpochMetrics = {
      epoch,
      lr,
      train_loss: lossSum / Math.max(seen, 1),
      train_accuracy: task === 'classification' ? correct / Math.max(seen, 1) : null,
      val_loss: validation?.loss ?? null,
      val_accuracy: validation?.accuracy ?? null,
      duration_ms: now() - epochStarted,
    };
    epochs.push(metrics);
    input.onEpoch?.(metrics, t.epochs);
    // Every step's loss was finite, but the step after the last one may not have left finite
    // weights (or outputs within float32): validation's loss is the first to see it.
    if (!Number.isFinite(metrics.train_loss) || (validation && !Number.isFinite(validation.loss))) {
      throw diverged(
        `the ${Number.isFinite(metrics.train_loss) ? `validation loss is ${validation!.loss}` : `training loss is ${metrics.train_loss}`} at epoch ${epoch}`,
        config,
      );
    }
    await nextTurn();
    if (validation && (best === undefined || validation.loss < best.loss)) {
      best = {
        epoch,
        loss: validation.loss,
        state: t.patience !== null ? cloneStateDict(network.stateDict()) : new Map(),
      };
    }
    if (t.patience !== null && best && epoch - best.epoch >= t.patience) {
      stoppedEarly = true;
      break;
    }
  }
  const keepBest = t.patience !== null && best !== undefined && best.state.size > 0;
  if (keepBest) network.loadStateDict(best!.state);
  // Without patience the last epoch's weights are kept even when an earlier one validated better:
  // best_epoch says which validated best, weights_epoch which the checkpoint holds.
  const weightsEpoch = keepBest ? best!.epoch : epochs.length;
  network.eval();
  if (targetScale) applyTargetScale(network, targetScale, 'fold');

  // The weights a caller would publish: checked here, so no caller can publish NaN (the last
  // step's update is seen by no loss when there are no validation rows).
  const bad = firstNonFinite(network.stateDict());
  if (bad) {
    throw diverged(
      `after epoch ${epochs.length} tensor "${bad.name}" holds a non-finite value at index ${bad.index}`,
      config,
    );
  }
  const test = testSet.rows > 0 ? evaluate(network, testSet, task, inputShape) : undefined;
  // The checkpoint's tensors go back to ordinary arrays (and the WebAssembly memory can go).
  network.reuseArrays(false);
  network.useKernels(referenceKernels);
  const regressionFit = test && task === 'regression' ? fitQuality(test.loss, testSet.targets) : {};
  const trainingSeconds = (now() - trainingStarted) / 1000;
  const wallTime = now() - started;
  const outConfig: ModelConfig = {
    format: MODEL_FORMAT,
    name: config.name,
    task,
    input_shape: [...inputShape],
    ...(task === 'classification'
      ? { labels: input.init?.config.labels ?? data.labels ?? [] }
      : {}),
    ...(config.description !== undefined ? { description: config.description } : {}),
    ...(transform
      ? { input_transform: { shift: [...transform.shift], scale: [...transform.scale] } }
      : {}),
    layers,
    training: {
      feature_names: data.featureNames,
      label_column: config.data.label_column,
      data_path: config.data.path,
      data_sha256: input.dataSha256,
      seed: config.seed,
      epochs_run: epochs.length,
      best_epoch: best?.epoch ?? null,
      weights_epoch: weightsEpoch,
      test_accuracy: test?.accuracy ?? null,
      recipe: config.training,
      ...(input.init ? { initialized_from: input.init.source ?? input.init.config.name } : {}),
    },
  };
  return {
    config: outConfig,
    state: network.stateDict(),
    metrics: {
      format: 'normserve.metrics/v1',
      seed: config.seed,
      data_sha256: input.dataSha256,
      data_path: config.data.path,
      rows: { train: trainSet.rows, validation: validationSet.rows, test: testSet.rows },
      epochs,
      best_epoch: best?.epoch ?? null,
      weights_epoch: weightsEpoch,
      stopped_early: stoppedEarly,
      test: test
        ? { loss: test.loss, accuracy: test.accuracy ?? null, rows: test.rows, ...regressionFit }
        : null,
      wall_time_ms: wallTime,
      samples_per_second: trainingSeconds > 0 ? samplesSeen / trainingSeconds : 0,
    },
  };
}
