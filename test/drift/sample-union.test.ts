/**
 * One uniform traffic sample of several processes' traffic (WORKERS > 1): each process keeps a
 * uniform sample of its own rows (Reservoir, Algorithm R); the deciding process draws from their
 * union by allocating the draw across the samples by the rows each stands for (multivariate
 * hypergeometric: allocateDraw) and then uniformly within each (uniformUnion). Seeded statistical
 * tests with generous bounds: which stream, and which row, ends up in the sample.
 */
import { describe, expect, it } from 'vitest';
import {
  allocateDraw,
  Reservoir,
  type UniformSample,
  uniformUnion,
} from '../../src/drift/index.js';
import { Rng } from '../../src/nn/index.js';

/** Pearson's chi-square statistic of observed against expected counts. */
function chiSquare(observed: readonly number[], expected: readonly number[]): number {
  return observed.reduce((s, o, i) => s + (o - expected[i]!) ** 2 / expected[i]!, 0);
}

/**
 * A generous upper bound for a chi-square statistic with `df` degrees of freedom: the mean plus
 * six standard deviations (√(2·df)); a false alarm is far below one in a million.
 */
const chiSquareBound = (df: number) => df + 6 * Math.sqrt(2 * df);

/** Streams of rows whose one value is the row's id across all streams (width 1). */
function streams(lengths: readonly number[]): Float32Array[] {
  let id = 0;
  return lengths.map((n) => Float32Array.from({ length: n }, () => id++));
}

describe('allocateDraw (multivariate hypergeometric)', () => {
  it('takes from each stream in proportion to the rows it stands for, not to the rows it holds', () => {
    const rng = new Rng(25);
    const seen = [100, 300, 600];
    const draw = 50;
    const trials = 4000;
    const totals = [0, 0, 0];
    for (let t = 0; t < trials; t++) {
      const counts = allocateDraw(seen, draw, rng);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(draw);
      counts.forEach((c, i) => {
        expect(c).toBeLessThanOrEqual(seen[i]!);
        totals[i]! += c;
      });
    }
    const expected = seen.map((n) => (trials * draw * n) / 1000);
    // Rows drawn without replacement vary less than multinomial counts: the statistic is smaller.
    expect(chiSquare(totals, expected)).toBeLessThan(chiSquareBound(2));
    // Proportional to the held rows (equal samples of 50) would be far off.
    expect(
      chiSquare(
        totals,
        [1, 1, 1].map(() => (trials * draw) / 3),
      ),
    ).toBeGreaterThan(1000);
  });

  it('draws everything when the draw is the whole population, and refuses more', () => {
    const rng = new Rng(1);
    expect(allocateDraw([3, 0, 5], 8, rng)).toEqual([3, 0, 5]);
    expect(allocateDraw([3, 5], 0, rng)).toEqual([0, 0]);
    expect(() => allocateDraw([3, 5], 9, rng)).toThrow(RangeError);
    expect(() => allocateDraw([3, -1], 1, rng)).toThrow(RangeError);
  });
});

describe('uniformUnion of per-process reservoirs', () => {
  it('holds every row of all the streams with the same probability (chi-square over 1,000 rows)', () => {
    const rng = new Rng(2525);
    const lengths = [120, 280, 600]; // three workers' shares of 1,000 rows
    const data = streams(lengths);
    const capacity = 64;
    const trials = 3000;
    const held = new Array<number>(1000).fill(0);
    const fromStream = [0, 0, 0];
    for (let t = 0; t < trials; t++) {
      const samples = data.map((rows) => {
        const r = new Reservoir(1, capacity, rng);
        for (let i = 0; i < rows.length; i++) r.offer(rows.subarray(i, i + 1), 1);
        return r.sample();
      });
      // Folded one answer at a time, as the deciding process does.
      let merged: UniformSample = { rows: new Float32Array(0), size: 0, seen: 0 };
      for (const s of samples) merged = uniformUnion([merged, s], 1, capacity, rng);
      expect(merged.size).toBe(capacity);
      expect(merged.seen).toBe(1000);
      const ids = new Set(merged.rows);
      expect(ids.size).toBe(capacity); // without replacement
      for (const id of ids) {
        held[id]!++;
        fromStream[id < 120 ? 0 : id < 400 ? 1 : 2]!++;
      }
    }
    const e = (trials * capacity) / 1000;
    expect(
      chiSquare(
        held,
        held.map(() => e),
      ),
    ).toBeLessThan(chiSquareBound(999));
    expect(
      chiSquare(
        fromStream,
        lengths.map((n) => n * e),
      ),
    ).toBeLessThan(chiSquareBound(2));
  });

  it('stays within the capacity in rows (and so in bytes), and takes all when there are fewer', () => {
    const rng = new Rng(7);
    const width = 3;
    const a = { rows: new Float32Array(10 * width).fill(1), size: 10, seen: 10 };
    const b = { rows: new Float32Array(8 * width).fill(2), size: 8, seen: 8 };
    const all = uniformUnion([a, b], width, 64, rng);
    expect(all.size).toBe(18);
    expect(all.rows.length).toBe(18 * width);
    expect(all.rows.filter((v) => v === 1).length).toBe(10 * width);
    const few = uniformUnion([a, b], width, 5, rng);
    expect(few.size).toBe(5);
    expect(few.rows.byteLength).toBe(5 * width * 4);
    expect(few.seen).toBe(18);
  });

  it('refuses a sample that holds fewer rows than its share of the draw could need', () => {
    const rng = new Rng(3);
    // 4 rows standing for 100, with a draw of up to 10: it may have to give 10.
    const thin = { rows: new Float32Array(4), size: 4, seen: 100 };
    const full = { rows: new Float32Array(10), size: 10, seen: 10 };
    expect(() => uniformUnion([thin, full], 1, 10, rng)).toThrow(/cannot give/);
    expect(() =>
      uniformUnion([{ rows: new Float32Array(2), size: 3, seen: 3 }], 1, 10, rng),
    ).toThrow(/malformed/);
  });
});
