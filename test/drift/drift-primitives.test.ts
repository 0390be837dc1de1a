import { describe, expect, it } from 'vitest';
import {
  distinctRows,
  histogram,
  layerDrift,
  modelDriftScore,
  RecentRows,
  Reservoir,
  recalibrationRecommended,
  ShadowComparison,
  WindowedMoments,
} from '../../src/drift/index.js';
import { Rng } from '../../src/nn/index.js';
import { STATS_RTOL } from '../helpers/tolerances.js';

/** count, mean and M2 of a list of values per channel (two-pass, float64). */
function moments(values: number[][]): { count: number; mean: number[]; m2: number[] } {
  const count = values.length;
  const channels = values[0]!.length;
  const mean = Array.from(
    { length: channels },
    (_, c) => values.reduce((s, v) => s + v[c]!, 0) / count,
  );
  const m2 = mean.map((m, c) => values.reduce((s, v) => s + (v[c]! - m) ** 2, 0));
  return { count, mean, m2 };
}

describe('layerDrift', () => {
  it('is the channel mean of |Δμ|/σ_run + |ln(σ_live/σ_run)| with σ = √(var + ε)', () => {
    const running = { path: '1', mean: [0, 1], variance: [1, 4], eps: 0 };
    // Channel 0: live mean 1 (one σ away), live variance 1 (ratio 1).
    // Channel 1: live mean 1 (no shift), live variance 4·e² (σ ratio e).
    const live = { count: 3, mean: [1, 1], m2: [2, 2 * 4 * Math.E ** 2] };
    const d = layerDrift(running, live);
    expect(d.mean_shift).toBeCloseTo(0.5, 12);
    expect(d.log_std_ratio).toBeCloseTo(0.5, 12);
    expect(d.score).toBeCloseTo(1, 12);
    expect(d.count).toBe(3);
  });

  it('includes ε in both standard deviations', () => {
    const d = layerDrift(
      { path: '0', mean: [0], variance: [0], eps: 1e-5 },
      { count: 10, mean: [0], m2: [0] },
    );
    expect(d.score).toBe(0);
  });

  it('reports 0 before two values were seen', () => {
    const d = layerDrift(
      { path: '0', mean: [5], variance: [1], eps: 1e-5 },
      { count: 1, mean: [0], m2: [0] },
    );
    expect(d.score).toBe(0);
  });

  it('the model score is its worst layer; recommended needs the rows and a score above the threshold', () => {
    const layers = [
      { path: 'a', channels: 1, count: 5, mean_shift: 0, log_std_ratio: 0, score: 0.2 },
      { path: 'b', channels: 1, count: 5, mean_shift: 0, log_std_ratio: 0, score: 0.7 },
    ];
    expect(modelDriftScore(layers)).toBe(0.7);
    const rule = { threshold: 0.5, minRows: 100 };
    expect(recalibrationRecommended(rule, 0.7, 99)).toBe(false);
    expect(recalibrationRecommended(rule, 0.7, 100)).toBe(true);
    expect(recalibrationRecommended(rule, 0.5, 100)).toBe(false);
  });
});

describe('WindowedMoments', () => {
  it('merges windows to the moments of all their values, and forgets expired windows', () => {
    const rng = new Rng(1);
    const batches = Array.from({ length: 6 }, () =>
      Array.from({ length: 7 }, () => [rng.normal() * 3 + 1, rng.normal()]),
    );
    const w = new WindowedMoments([1, 1], 1000, 3);
    const moments2 = (b: number[][]) => {
      const m = moments(b);
      return [0, 1].map((c) => ({ count: m.count, mean: [m.mean[c]!], m2: [m.m2[c]!] }));
    };
    // Batches at t = 0, 500, 1500, 2500, 3100, 3900: windows [0,1000) … [3000,4000).
    const times = [0, 500, 1500, 2500, 3100, 3900];
    batches.forEach((b, i) => {
      w.add(times[i]!, b.length, moments2(b));
    });
    // At t = 3900 the horizon is windows 1000, 2000, 3000: batches 2..5.
    const merged = w.merged(3900);
    const expected = moments(batches.slice(2).flat());
    expect(merged.rows).toBe(28);
    for (let c = 0; c < 2; c++) {
      expect(merged.layers[c]!.count).toBe(28);
      expect(merged.layers[c]!.mean[0]!).toBeCloseTo(expected.mean[c]!, 10);
      expect(Math.abs(merged.layers[c]!.m2[0]! / expected.m2[c]! - 1)).toBeLessThan(STATS_RTOL);
    }
    expect(w.windowsAt(3900).map((x) => x.start)).toEqual([1000, 2000, 3000]);
    expect(w.merged(10_000).rows).toBe(0);
  });
});

describe('WindowedMoments.addWindow', () => {
  it("merges another process's windows in order; one outside the horizon is dropped", () => {
    const w = new WindowedMoments([1], 1000, 3);
    const one = (x: number) => [{ count: 1, mean: [x], m2: [0] }];
    w.add(2500, 1, one(1));
    w.addWindow(2600, 1000, 1, one(3)); // before the local window
    w.addWindow(2600, 2000, 1, one(5)); // into it
    w.addWindow(2600, -1000, 1, one(7)); // expired: [0, 3000) is the horizon
    expect(w.windowsAt(2600).map((x) => [x.start, x.rows])).toEqual([
      [1000, 1],
      [2000, 2],
    ]);
    const merged = w.merged(2600);
    expect(merged.rows).toBe(3);
    expect(merged.layers[0]!.mean[0]).toBeCloseTo(3, 12);
    expect(merged.layers[0]!.m2[0]).toBeCloseTo(8, 12);
  });
});

describe('RecentRows', () => {
  it('keeps the last rows in order across the end of its ring, however they arrive', () => {
    const ring = new RecentRows(2, 5);
    const rows = (from: number, n: number) =>
      Float32Array.from({ length: 2 * n }, (_, i) => from + Math.floor(i / 2));
    ring.push(rows(0, 3), 3);
    ring.push(rows(3, 4), 4); // wraps
    expect([...ring.rows()]).toEqual([2, 2, 3, 3, 4, 4, 5, 5, 6, 6]);
    ring.push(rows(7, 12), 12); // more than it holds: the last 5
    expect(ring.size).toBe(5);
    expect([...ring.rows()]).toEqual([14, 14, 15, 15, 16, 16, 17, 17, 18, 18]);
  });
});

describe('distinctRows', () => {
  it('keeps each distinct row once, in first-seen order, comparing float32 bits', () => {
    const rows = Float32Array.from([1, 2, 0, 0, 1, 2, -0, 0, 0, 0, 3, 4]);
    const d = distinctRows(rows, 6, 2);
    expect(d.count).toBe(4);
    expect(d.duplicates).toBe(2);
    expect(Array.from(d.rows)).toEqual([1, 2, 0, 0, -0, 0, 3, 4]);
    expect(Object.is(d.rows[4], -0)).toBe(true);
    const unique = Float32Array.from([1, 2, 3, 4]);
    expect(distinctRows(unique, 2, 2)).toEqual({ rows: unique, count: 2, duplicates: 0 });
  });
});

describe('Reservoir', () => {
  it('holds at most its capacity, every row of the stream equally likely (seeded)', () => {
    const capacity = 50;
    const n = 500;
    const hits = new Array<number>(n).fill(0);
    const trials = 400;
    const rng = new Rng(7);
    for (let t = 0; t < trials; t++) {
      const r = new Reservoir(1, capacity, rng);
      const stream = Float32Array.from({ length: n }, (_, i) => i);
      r.offer(stream.subarray(0, 123), 123);
      r.offer(stream.subarray(123), n - 123);
      expect(r.size).toBe(capacity);
      for (const v of r.rows()) hits[v]!++;
    }
    // Each row is held with probability capacity/n = 0.1: 40 of 400 trials on average (sd ≈ 6).
    const early = hits.slice(0, 100).reduce((a, b) => a + b, 0) / 100;
    const late = hits.slice(400).reduce((a, b) => a + b, 0) / 100;
    expect(Math.abs(early - 40)).toBeLessThan(4);
    expect(Math.abs(late - 40)).toBeLessThan(4);
  });

  it('offerAtMost offers a uniform choice of at most max rows of a call, and counts only those', () => {
    const rows = 10;
    const max = 3;
    const hits = new Array<number>(rows).fill(0);
    const trials = 20_000;
    const rng = new Rng(11);
    const call = Float32Array.from({ length: rows * 2 }, (_, i) => Math.floor(i / 2));
    for (let t = 0; t < trials; t++) {
      const r = new Reservoir(2, 16, rng);
      r.offerAtMost(call, rows, max);
      expect(r.seen).toBe(max);
      const held = r.rows();
      for (let k = 0; k < max; k++) {
        // Whole rows: both values of a row are its index.
        expect(held[2 * k]).toBe(held[2 * k + 1]);
        hits[held[2 * k]!]!++;
      }
      expect(new Set(Array.from({ length: max }, (_, k) => held[2 * k])).size).toBe(max);
    }
    // Each row is chosen with probability max/rows = 0.3: 6,000 of 20,000 (sd ≈ 65).
    for (const h of hits) expect(Math.abs(h - 6000)).toBeLessThan(400);
    const small = new Reservoir(2, 16, rng);
    small.offerAtMost(call, 2, max);
    expect(small.seen).toBe(2);
  });

  it('keeps whole rows and starts over on reset', () => {
    const r = new Reservoir(2, 4, new Rng(1));
    r.offer(Float32Array.of(1, 2, 3, 4), 2);
    expect([...r.rows()]).toEqual([1, 2, 3, 4]);
    r.reset();
    expect(r.size).toBe(0);
    expect(r.rows().length).toBe(0);
  });
});

describe('ShadowComparison', () => {
  it('counts agreement, mean entropy and confidence of both sides', () => {
    const s = new ShadowComparison();
    const active = Float32Array.of(0.5, 0.5, 0.9, 0.1);
    const candidate = Float32Array.of(0.25, 0.75, 1, 0);
    s.add(active, candidate, 2, 2);
    const r = s.summary();
    expect(r.rows).toBe(2);
    // Row 0: ties take the first class for the active side (0), the candidate says 1: disagree.
    expect(r.agreement).toBe(0.5);
    expect(r.active.mean_confidence).toBeCloseTo((0.5 + 0.9) / 2, 6);
    expect(r.candidate.mean_confidence).toBeCloseTo((0.75 + 1) / 2, 6);
    const h = (p: number[]) => -p.reduce((a, v) => a + (v > 0 ? v * Math.log(v) : 0), 0);
    expect(r.active.mean_entropy).toBeCloseTo((h([0.5, 0.5]) + h([0.9, 0.1])) / 2, 6);
    expect(r.candidate.mean_entropy).toBeCloseTo(h([0.25, 0.75]) / 2, 6);
  });
});

describe('histogram', () => {
  it('bins values over [min, max], the last bin closed, the rest counted apart', () => {
    const h = histogram([-1, 0, 0.49, 0.5, 1, 2, Number.NaN], 0, 1, 2);
    expect(h.counts).toEqual([2, 2]);
    expect(h.below).toBe(1);
    expect(h.above).toBe(1);
  });
});
