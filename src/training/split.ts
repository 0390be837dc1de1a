import { NormserveError } from '../errors/index.js';
import type { Rng } from '../nn/index.js';
import type { TrainingConfig } from './training-config.js';

export interface RowSplit {
  train: Int32Array;
  validation: Int32Array;
  test: Int32Array;
}

const range = (start: number, end: number): Int32Array =>
  Int32Array.from({ length: end - start }, (_, i) => start + i);
const sorted = (a: Int32Array): Int32Array => a.slice().sort();

/**
 * Deterministic train/validation/test split. The test rows are either a fixed range (the digits
 * data set's documented split) or a seeded random fraction; validation rows are a seeded random
 * fraction of the remaining training rows.
 */
export function splitRows(
  rows: number,
  split: TrainingConfig['data'],
  rng: Rng,
  source: string,
): RowSplit {
  let pool: Int32Array;
  let test: Int32Array;
  if ('from_row' in split.test_split) {
    const from = split.test_split.from_row;
    if (from >= rows) {
      throw new NormserveError(
        'DATA_INVALID',
        `${source}: test_split.from_row ${from} leaves no test rows (${rows} rows)`,
      );
    }
    pool = range(0, from);
    test = range(from, rows);
  } else {
    const perm = rng.permutation(rows);
    const testCount = Math.round(rows * split.test_split.fraction);
    test = sorted(perm.subarray(0, testCount));
    pool = sorted(perm.subarray(testCount));
  }
  const perm = rng.permutation(pool.length);
  const validationCount = Math.round(pool.length * split.validation_fraction);
  const validation = sorted(Int32Array.from(perm.subarray(0, validationCount), (i) => pool[i]!));
  const train = sorted(Int32Array.from(perm.subarray(validationCount), (i) => pool[i]!));
  if (train.length < 2)
    throw new NormserveError(
      'DATA_INVALID',
      `${source}: only ${train.length} training rows after the split`,
    );
  return { train, validation, test };
}
