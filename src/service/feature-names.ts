import { z } from 'zod';
import type { ModelConfig } from '../checkpoint/index.js';

/** What the CLIs read from `config.json`'s free-form `training` record. */
const trainingInfoSchema = z.looseObject({ feature_names: z.array(z.string()) });

/**
 * The feature names training recorded, in input order; undefined when there are none or the
 * record holds something else (the CLIs then take the CSV's columns in order).
 */
export function featureNamesOf(config: ModelConfig): string[] | undefined {
  const parsed = trainingInfoSchema.safeParse(config.training);
  return parsed.success ? parsed.data.feature_names : undefined;
}
