import { z } from 'zod';
import type { ModelConfig } from '../checkpoint/index.js';

/**
 * What the CLIs read from `config.json`'s free-form `training` record: each field parsed on its
 * own, so one that holds something else (a string where a list is expected) is left out instead
 * of crashing a CLI, and the CSV's columns are taken in order.
 */
const featureNamesSchema = z.array(z.string());
const labelColumnSchema = z.string();

export interface TrainingInfo {
  /** Feature names training recorded, in input order. */
  featureNames: string[] | undefined;
  /** The column training predicted. */
  labelColumn: string | undefined;
}

export function trainingInfoOf(config: ModelConfig): TrainingInfo {
  const training = config.training ?? {};
  return {
    featureNames: featureNamesSchema.safeParse(training.feature_names).data,
    labelColumn: labelColumnSchema.safeParse(training.label_column).data,
  };
}
