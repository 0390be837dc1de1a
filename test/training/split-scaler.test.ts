/** Deterministic train/validation/test splits and the standard scaler fitted on training rows. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/nn/index.js';
import { fitStandardScaler, type TrainingConfig } from '../../src/training/index.js';
import { splitRows } from '../../src/training/split.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import { OUTPUT_ATOL, STATS_RTOL } from '../helpers/tolerances.js';

type DataConfig = TrainingConfig['data'];

const dataConfig = (
  testSplit: DataConfig['test_split'],
  validationFraction: number,
): DataConfig => ({
  path: 'data.csv',
  label_column: 'label',
  test_split: testSplit,
  validation_fraction: validationFraction,
  input_scaling: 'standard',
});

/** Sorted, disjoint, and together exactly 0..rows−1. */
function expectPartition(parts: Int32Array[], rows: number): void {
  const all: number[] = [];
  for (const part of parts) {
    const values = Array.from(part);
    expect(values).toEqual([...values].sort((a, b) => a - b));
    all.push(...values);
  }
  expect(new Set(all).size, 'disjoint').toBe(all.length);
  expect(all.sort((a, b) => a - b)).toEqual(Array.from({ length: rows }, (_, i) => i));
}

describe('splitRows', () => {
  it('from_row: the test rows are exactly from_row..end; the rest is train + validation', () => {
    const split = splitRows(100, dataConfig({ from_row: 80 }, 0.25), new Rng(1), 'd.csv');
    expect(Array.from(split.test)).toEqual(Array.from({ length: 20 }, (_, i) => 80 + i));
    expect(split.validation.length).toBe(20);
    expect(split.train.length).toBe(60);
    expect(Math.max(...split.validation, ...split.train)).toBeLessThan(80);
    expectPartition([split.train, split.validation, split.test], 100);
  });

  it('fraction: round(rows·fraction) random test rows, disjoint from train and validation', () => {
    const split = splitRows(150, dataConfig({ fraction: 0.2 }, 0.1), new Rng(2), 'd.csv');
    expect(split.test.length).toBe(30);
    expect(split.validation.length).toBe(12);
    expect(split.train.length).toBe(108);
    expectPartition([split.train, split.validation, split.test], 150);
    // Random, not a block at the end.
    expect(Array.from(split.test)).not.toEqual(Array.from({ length: 30 }, (_, i) => 120 + i));
  });

  for (const testSplit of [{ from_row: 70 }, { fraction: 0.3 }] as const) {
    it(`is deterministic for a seed and changes with it (${JSON.stringify(testSplit)})`, () => {
      const config = dataConfig(testSplit, 0.2);
      const a = splitRows(100, config, new Rng(7), 'd.csv');
      const b = splitRows(100, config, new Rng(7), 'd.csv');
      const c = splitRows(100, config, new Rng(8), 'd.csv');
      for (const key of ['train', 'validation', 'test'] as const) {
        expect(Array.from(a[key]), key).toEqual(Array.from(b[key]));
      }
      expect(Array.from(a.validation)).not.toEqual(Array.from(c.validation));
    });
  }

  it('validation_fraction 0 gives no validation rows', () => {
    const split = splitRows(50, dataConfig({ fraction: 0.2 }, 0), new Rng(3), 'd.csv');
    expect(split.validation.length).toBe(0);
    expect(split.train.length).toBe(40);
    expectPartition([split.train, split.test], 50);
  });

  it('rejects from_row past the data, naming the file and both numbers', () => {
    const run = () => splitRows(100, dataConfig({ from_row: 100 }, 0.1), new Rng(4), 'd.csv');
    expect(run).toThrow(expect.objectContaining({ code: 'DATA_INVALID' }));
    expect(run).toThrow(/d\.csv: test_split\.from_row 100 .*100 rows/);
  });

  it('rejects a split that leaves fewer than 2 training rows', () => {
    const run = () => splitRows(4, dataConfig({ fraction: 0.5 }, 0.5), new Rng(5), 'd.csv');
    expect(run).toThrow(expect.objectContaining({ code: 'DATA_INVALID' }));
    expect(run).toThrow(/only 1 training rows/);
  });
});

describe('fitStandardScaler', () => {
  it('shift = mean, scale = 1/population std, per column', () => {
    // Columns: [1, 2, 3, 4] → mean 2.5, population std √1.25; [10, 10, 20, 20] → 15, 5.
    const features = Float32Array.from([1, 10, 2, 10, 3, 20, 4, 20]);
    const t = fitStandardScaler(features, 4, 2);
    expectRelClose(t.shift, [2.5, 15], STATS_RTOL, 'shift');
    expectRelClose(t.scale, [1 / Math.sqrt(1.25), 1 / 5], STATS_RTOL, 'scale');
  });

  it('a constant column gets scale 1 (and its value as shift), never a division by zero', () => {
    const features = Float32Array.from([0, 1, 0, 2, 0, 3, 0, 4]);
    const t = fitStandardScaler(features, 4, 2);
    expect(t.shift[0]).toBe(0);
    expect(t.scale[0]).toBe(1);
    const c = fitStandardScaler(Float32Array.from([7.5, 7.5, 7.5]), 3, 1);
    expect(c.shift).toEqual([7.5]);
    expect(c.scale).toEqual([1]);
  });

  it('standardizes the training rows to mean 0 and variance 1', () => {
    const rng = new Rng(6);
    const rows = 200;
    const features = new Float32Array(rows * 3);
    for (let i = 0; i < features.length; i++)
      features[i] = 5 * (i % 3) + (1 + (i % 3)) * rng.normal();
    const t = fitStandardScaler(features, rows, 3);
    const means = [0, 0, 0];
    const squares = [0, 0, 0];
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < 3; j++) {
        const z = (features[r * 3 + j]! - t.shift[j]!) * t.scale[j]!;
        means[j] = means[j]! + z / rows;
        squares[j] = squares[j]! + (z * z) / rows;
      }
    }
    expectClose(means, [0, 0, 0], OUTPUT_ATOL, 'means');
    expectRelClose(squares, [1, 1, 1], STATS_RTOL, 'variances');
  });
});
