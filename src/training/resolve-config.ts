import {
  type LayerSpec,
  MODEL_NAME_CHARS,
  MODEL_NAME_FIRST_CHARS,
  MODEL_NAME_MAX_CHARS,
  MODEL_NAME_PATTERN,
  type ModelConfig,
  type Task,
} from '../checkpoint/model-config.js';
import { NormserveError, quote } from '../errors/index.js';
import { architectureSchema, layersFromArchitecture } from './architecture.js';
import type { LabeledDataset } from './dataset.js';
import type { TrainingConfig } from './training-config.js';

/** A training config with everything that depends on the data filled in. */
export type ResolvedTrainingConfig = Omit<TrainingConfig, 'architecture'> & {
  name: string;
  task: Task;
  description: string;
  /** The sample shape: the init model's, the config's, or [feature count]. */
  input_shape: number[];
  layers: LayerSpec[];
};

/** More distinct numeric labels than this, with no task given, look like a numeric target. */
export const MAX_GUESSED_CLASSES = 20;

/** `data/My Data.v2.csv` → `My-Data.v2`: the file's base name made a valid model name. */
export function modelNameFromPath(path: string): string {
  const base = path
    .split(/[\\/]/)
    .at(-1)!
    .replace(/\.[^.]*$/, '');
  const name = base
    .replace(new RegExp(`[^${MODEL_NAME_CHARS}]+`, 'g'), '-')
    .replace(new RegExp(`^[^${MODEL_NAME_FIRST_CHARS}]+`), '')
    .slice(0, MODEL_NAME_MAX_CHARS);
  return MODEL_NAME_PATTERN.test(name) ? name : 'model';
}

/**
 * Fills in what a config may leave to the data: the task (classification unless given; numeric
 * labels that look like a continuous target are refused with a hint instead of becoming dozens
 * of classes), the name (from the data file), the description, the layers (from `architecture`
 * or its defaults, sized by the data's width and classes) and, for regression, target scaling.
 * `init` is the checkpoint fine-tuning starts from: its task and layers win. Idempotent.
 */
export function resolveTrainingConfig(
  config: TrainingConfig | ResolvedTrainingConfig,
  data: LabeledDataset,
  init?: ModelConfig,
): ResolvedTrainingConfig {
  const path = config.data.path;
  const label = config.data.label_column;
  const task = init?.task ?? config.task ?? 'classification';
  if (task === 'classification') {
    const classes = data.labels ?? [];
    if (classes.length < 2) {
      throw new NormserveError(
        'DATA_INVALID',
        `${path}: label column ${quote(label)} has ${classes.length === 1 ? `a single value (${quote(classes[0]!)})` : 'no values'}; classification needs at least 2 classes`,
      );
    }
    const numbers = classes.map(Number);
    const numeric = classes.every((c, i) => c.trim() !== '' && Number.isFinite(numbers[i]));
    const fractional = numeric && numbers.some((n) => !Number.isInteger(n));
    if (
      config.task === undefined &&
      !init &&
      numeric &&
      (fractional || classes.length > MAX_GUESSED_CLASSES)
    ) {
      const example = fractional
        ? classes.find((_, i) => !Number.isInteger(numbers[i]))!
        : classes.at(-1)!;
      throw new NormserveError(
        'TRAINING_CONFIG_INVALID',
        `${path}: label column "${label}" holds ${classes.length} distinct numbers (e.g. ${example}), which looks like a numeric target: for regression set the task to "regression" (--task regression); to train ${classes.length} classes anyway, set it to "classification"`,
      );
    }
  }
  if (task === 'classification' && config.data.target_scaling !== undefined) {
    throw new NormserveError(
      'TRAINING_CONFIG_INVALID',
      'data.target_scaling applies to regression only (classification targets are classes)',
    );
  }
  const outputs = task === 'classification' ? data.labels!.length : 1;
  const architecture = 'architecture' in config ? config.architecture : undefined;
  const layers =
    init?.layers ??
    config.layers ??
    layersFromArchitecture(architecture ?? architectureSchema.parse({}), data.width, outputs);
  const file = path.split(/[\\/]/).at(-1)!;
  const what = task === 'classification' ? `${outputs} classes` : 'regression';
  // Key order as a config file would have it: --print-config shows this object.
  return {
    name: config.name ?? modelNameFromPath(path),
    task,
    description:
      config.description ??
      `Trained on ${file} (${data.rows} rows): "${label}" from ${data.width} features, ${what}`,
    seed: config.seed,
    data: {
      ...config.data,
      ...(task === 'regression'
        ? { target_scaling: config.data.target_scaling ?? ('standard' as const) }
        : {}),
    },
    input_shape: init?.input_shape ?? config.input_shape ?? [data.width],
    layers,
    training: config.training,
  };
}
