/**
 * BatchNorm, Dropout, Rng and AdamW facts that the PyTorch fixtures (torch-golden.test.ts) do not
 * pin down: exact invariants of eval mode, the cumulative average of momentum=None, state-dict
 * naming and load errors, dropout statistics, RNG determinism, decoupled weight decay.
 */
import { describe, expect, it } from 'vitest';
import {
  Adam,
  AdamW,
  AlphaDropout,
  BatchNorm1d,
  BatchNorm2d,
  Dropout,
  LayerNorm,
  Linear,
  Parameter,
  ReLU,
  Rng,
  Sequential,
  type StateDict,
  Tensor,
} from '../../src/nn/index.js';
import { expectClose, expectRelClose } from '../helpers/compare.js';
import { randomTensor } from '../helpers/gradcheck.js';
import {
  ALPHA_DROPOUT_MOMENT_ATOL,
  DROPOUT_KEEP_RATE_ATOL,
  RNG_CHI_SQUARE_MAX_DF9,
  RNG_NORMAL_MOMENT_ATOL,
} from '../helpers/statistical-tolerances.js';
import {
  BATCH_INDEPENDENCE_ATOL,
  OUTPUT_ATOL,
  PARAM_ATOL,
  STATS_RTOL,
} from '../helpers/tolerances.js';

/** A BatchNorm1d with non-trivial parameters and running statistics (after a few train steps). */
function trainedBatchNorm(numFeatures = 3, seed = 1): BatchNorm1d {
  const rng = new Rng(seed);
  const bn = new BatchNorm1d({ numFeatures });
  for (let i = 0; i < numFeatures; i++) {
    bn.weight!.value.data[i] = rng.uniform(0.5, 1.5);
    bn.bias!.value.data[i] = rng.uniform(-0.5, 0.5);
  }
  for (let k = 0; k < 3; k++) bn.forward(randomTensor(rng, [8, numFeatures], 3));
  return bn;
}

const snapshot = (bn: BatchNorm1d | BatchNorm2d) => ({
  mean: Array.from(bn.runningMean.data),
  variance: Array.from(bn.runningVar.data),
  tracked: bn.numBatchesTracked,
});

describe('BatchNorm in eval mode', () => {
  it('never changes running_mean, running_var or num_batches_tracked (forward and backward)', () => {
    const bn = trainedBatchNorm();
    const bn2 = new BatchNorm2d({ numFeatures: 2, momentum: null });
    bn2.forward(randomTensor(new Rng(2), [3, 2, 2, 2], 2));
    for (const m of [bn, bn2]) {
      const before = snapshot(m);
      expect(before.tracked).toBeGreaterThan(0);
      m.eval();
      const rng = new Rng(3);
      const shape = m instanceof BatchNorm2d ? [4, 2, 3, 3] : [5, 3];
      for (let k = 0; k < 5; k++) {
        const y = m.forward(randomTensor(rng, shape, 10));
        m.backward(randomTensor(rng, y.shape));
      }
      expect(snapshot(m)).toEqual(before);
    }
  });

  it('accepts a batch of one row, for 2D, 3D and 4D inputs', () => {
    const bn = trainedBatchNorm().eval();
    expect(bn.forward(Tensor.from([1, 2, 3], [1, 3])).shape).toEqual([1, 3]);
    expect(bn.forward(Tensor.from([1, 2, 3], [1, 3, 1])).shape).toEqual([1, 3, 1]);
    const bn2 = new BatchNorm2d({ numFeatures: 2 }).eval();
    expect(bn2.forward(Tensor.from([5, -5], [1, 2, 1, 1])).shape).toEqual([1, 2, 1, 1]);
  });

  it('computes (x − running_mean)/√(running_var + eps)·γ + β element by element', () => {
    const bn = trainedBatchNorm().eval();
    const x = Tensor.from([0.5, -1, 2], [1, 3]);
    const y = bn.forward(x);
    const expected = [0, 1, 2].map((c) => {
      const inv = 1 / Math.sqrt(bn.runningVar.data[c]! + bn.eps);
      return (
        (x.data[c]! - bn.runningMean.data[c]!) * inv * bn.weight!.value.data[c]! +
        bn.bias!.value.data[c]!
      );
    });
    expectClose(y.data, expected, OUTPUT_ATOL, 'eval output of one row');
  });

  it('gives each row an output that does not depend on the other rows', () => {
    const network = new Sequential([
      new Linear({ inFeatures: 4, outFeatures: 6 }, new Rng(4)),
      trainedBatchNorm(6, 5),
      new ReLU(),
      new Dropout({ p: 0.5 }, new Rng(6)),
      new Linear({ inFeatures: 6, outFeatures: 3 }, new Rng(7)),
    ]).eval();
    const x = randomTensor(new Rng(8), [7, 4], 3);
    const together = network.forward(x).toRows();
    // Each row alone, and each row inside a batch whose other rows are replaced by wild values.
    const other = randomTensor(new Rng(9), [7, 4], 100);
    for (let r = 0; r < x.rows; r++) {
      const alone = network.forward(x.sliceRows(r, r + 1).clone()).toRows()[0]!;
      expectClose(alone, together[r]!, BATCH_INDEPENDENCE_ATOL, `row ${r} alone`);
      const mixed = other.clone();
      mixed.data.set(x.sliceRows(r, r + 1).data, r * 4);
      const inMixed = network.forward(mixed).toRows()[r]!;
      expectClose(inMixed, together[r]!, BATCH_INDEPENDENCE_ATOL, `row ${r} among other rows`);
    }
  });
});

describe('BatchNorm in train mode', () => {
  it('rejects one value per channel with BATCHNORM_SINGLE_VALUE and leaves the state alone', () => {
    const bn = trainedBatchNorm(4);
    const before = snapshot(bn);
    const run = () => bn.forward(Tensor.from([1, 2, 3, 4], [1, 4]));
    expect(run).toThrow(
      expect.objectContaining({
        code: 'BATCHNORM_SINGLE_VALUE',
        message: expect.stringContaining('Expected more than 1 value per channel when training'),
      }),
    );
    expect(snapshot(bn)).toEqual(before);
    // The same row is fine in eval mode; two rows are fine in train mode.
    bn.eval();
    expect(() => run()).not.toThrow();
    bn.train();
    expect(() => bn.forward(Tensor.from([1, 2, 3, 4, 5, 6, 7, 9], [2, 4]))).not.toThrow();
    expect(bn.numBatchesTracked).toBe(before.tracked + 1);
  });

  it('with momentum null keeps the exact cumulative average of the batch statistics', () => {
    const bn = new BatchNorm1d({ numFeatures: 3, momentum: null });
    const rng = new Rng(10);
    const means: number[][] = [];
    const unbiasedVars: number[][] = [];
    const batches = [4, 7, 2, 5, 9];
    for (const n of batches) {
      const x = randomTensor(rng, [n, 3], 4);
      for (let i = 0; i < x.numel; i++) x.data[i] = x.data[i]! + 2 * (i % 3);
      bn.forward(x);
      const rows = x.toRows();
      const m = [0, 1, 2].map((c) => rows.reduce((s, row) => s + row[c]!, 0) / n);
      means.push(m);
      unbiasedVars.push(
        [0, 1, 2].map((c) => rows.reduce((s, row) => s + (row[c]! - m[c]!) ** 2, 0) / (n - 1)),
      );
      const k = means.length;
      const avg = (values: number[][]) =>
        [0, 1, 2].map((c) => values.reduce((s, v) => s + v[c]!, 0) / k);
      // The initial running_mean=0, running_var=1 carry weight 0 from the first batch on.
      expectRelClose(bn.runningMean.data, avg(means), STATS_RTOL, `mean after ${k} batches`);
      expectRelClose(bn.runningVar.data, avg(unbiasedVars), STATS_RTOL, `var after ${k} batches`);
      expect(bn.numBatchesTracked).toBe(k);
    }
  });

  it('with momentum 0.1 blends 0.9·old + 0.1·batch (unbiased variance)', () => {
    const bn = new BatchNorm1d({ numFeatures: 1 });
    bn.forward(Tensor.from([1, 2, 3, 6], [4, 1]));
    // mean 3, unbiased variance (4 + 1 + 0 + 9)/3 = 14/3
    expectRelClose(bn.runningMean.data, [0.3], STATS_RTOL, 'running_mean');
    expectRelClose(bn.runningVar.data, [0.9 + 0.1 * (14 / 3)], STATS_RTOL, 'running_var');
  });
});

describe('state dicts', () => {
  const build = () =>
    new Sequential([
      new Linear({ inFeatures: 3, outFeatures: 4 }, new Rng(11)),
      new BatchNorm1d({ numFeatures: 4 }),
      new ReLU(),
      new Dropout({ p: 0.1 }),
      new Linear({ inFeatures: 4, outFeatures: 2, bias: false }, new Rng(12)),
      new LayerNorm({ normalizedShape: [2] }),
      new BatchNorm1d({ numFeatures: 2, affine: false }),
    ]);

  it('names tensors as PyTorch does, in order, with num_batches_tracked as a bigint', () => {
    const network = build();
    network.forward(randomTensor(new Rng(13), [5, 3]));
    network.forward(randomTensor(new Rng(14), [5, 3]));
    const state = network.stateDict();
    expect([...state.keys()]).toEqual([
      '0.weight',
      '0.bias',
      '1.weight',
      '1.bias',
      '1.running_mean',
      '1.running_var',
      '1.num_batches_tracked',
      '4.weight',
      '5.weight',
      '5.bias',
      '6.running_mean',
      '6.running_var',
      '6.num_batches_tracked',
    ]);
    expect(state.get('1.num_batches_tracked')).toBe(2n);
    expect(state.get('6.num_batches_tracked')).toBe(2n);
    expect((state.get('0.weight') as Tensor).shape).toEqual([4, 3]);
    expect((state.get('1.running_var') as Tensor).shape).toEqual([4]);
    expect([...network.namedParameters().map(([n]) => n)]).toEqual([
      '0.weight',
      '0.bias',
      '1.weight',
      '1.bias',
      '4.weight',
      '5.weight',
      '5.bias',
    ]);
  });

  it('round-trips through loadStateDict, including num_batches_tracked', () => {
    const source = build();
    source.forward(randomTensor(new Rng(15), [6, 3]));
    const target = build();
    const copy: StateDict = new Map();
    for (const [k, v] of source.stateDict()) copy.set(k, typeof v === 'bigint' ? v : v.clone());
    target.loadStateDict(copy);
    const loaded = target.stateDict();
    for (const [k, v] of source.stateDict()) {
      const w = loaded.get(k)!;
      if (typeof v === 'bigint') expect(w).toBe(v);
      else expect(Array.from((w as Tensor).data), k).toEqual(Array.from(v.data));
    }
  });

  const stateOf = () => {
    const state: StateDict = new Map();
    for (const [k, v] of build().stateDict()) state.set(k, typeof v === 'bigint' ? v : v.clone());
    return state;
  };
  const loadError = (state: StateDict): Error & { code?: string } => {
    try {
      build().loadStateDict(state);
    } catch (e) {
      return e as Error & { code?: string };
    }
    throw new Error('loadStateDict did not throw');
  };

  it('rejects a missing tensor, naming it', () => {
    const state = stateOf();
    state.delete('1.running_var');
    const e = loadError(state);
    expect(e.code).toBe('CHECKPOINT_MISMATCH');
    expect(e.message).toContain('missing');
    expect(e.message).toContain('"1.running_var"');
  });

  it('loads a state without num_batches_tracked with the count at 0, as PyTorch does', () => {
    // torch/nn/modules/batchnorm.py, _NormBase._load_from_state_dict: a state_dict without
    // version metadata (every safetensors file) gets num_batches_tracked = tensor(0).
    const source = build();
    source.forward(randomTensor(new Rng(15), [6, 3]));
    const state: StateDict = new Map();
    for (const [k, v] of source.stateDict())
      if (!k.endsWith('num_batches_tracked')) state.set(k, typeof v === 'bigint' ? v : v.clone());
    const target = build();
    target.forward(randomTensor(new Rng(16), [6, 3]));
    expect(target.stateDict().get('1.num_batches_tracked')).toBe(1n);
    target.loadStateDict(state);
    expect(target.stateDict().get('1.num_batches_tracked')).toBe(0n);
    const runningVar = target.stateDict().get('1.running_var') as Tensor;
    expect(Array.from(runningVar.data)).toEqual(
      Array.from((source.stateDict().get('1.running_var') as Tensor).data),
    );
  });

  it('rejects an unexpected tensor, naming it', () => {
    const state = stateOf();
    state.set('4.bias', Tensor.zeros([2]));
    const e = loadError(state);
    expect(e.code).toBe('CHECKPOINT_MISMATCH');
    expect(e.message).toContain('unexpected');
    expect(e.message).toContain('"4.bias"');
  });

  it('rejects a tensor of the wrong shape, naming it and both shapes', () => {
    const state = stateOf();
    state.set('0.weight', Tensor.zeros([3, 4]));
    const e = loadError(state);
    expect(e.code).toBe('CHECKPOINT_MISMATCH');
    expect(e.message).toContain('"0.weight"');
    expect(e.message).toContain('[3,4]');
    expect(e.message).toContain('[4,3]');
  });

  it('rejects a float tensor where num_batches_tracked (an integer) belongs, naming it', () => {
    const state = stateOf();
    state.set('6.num_batches_tracked', Tensor.zeros([]));
    const e = loadError(state);
    expect(e.code).toBe('CHECKPOINT_MISMATCH');
    expect(e.message).toContain('"6.num_batches_tracked"');
  });
});

describe('Dropout', () => {
  it('is the identity in eval mode (same tensor, gradient passed through)', () => {
    const d = new Dropout({ p: 0.7 }, new Rng(16)).eval();
    const x = randomTensor(new Rng(17), [4, 5]);
    expect(Array.from(d.forward(x).data)).toEqual(Array.from(x.data));
    const g = randomTensor(new Rng(18), [4, 5]);
    expect(Array.from(d.backward(g).data)).toEqual(Array.from(g.data));
  });

  for (const p of [0.2, 0.5, 0.8]) {
    it(`p=${p} in train mode: zeros or x/(1−p), keep rate ≈ 1−p over 1e5 elements`, () => {
      const d = new Dropout({ p }, new Rng(19));
      const n = 100_000;
      const x = Tensor.zeros([n / 100, 100]);
      for (let i = 0; i < n; i++) x.data[i] = 1 + (i % 7);
      const y = d.forward(x);
      const survivors: number[] = [];
      const scaled: number[] = [];
      for (let i = 0; i < n; i++) {
        if (y.data[i] === 0) continue;
        survivors.push(y.data[i]!);
        scaled.push(x.data[i]! / (1 - p));
      }
      expectClose(survivors, scaled, OUTPUT_ATOL, 'survivors');
      const kept = survivors.length;
      expect(Math.abs(kept / n - (1 - p))).toBeLessThanOrEqual(DROPOUT_KEEP_RATE_ATOL);
    });
  }

  it('p=0 and p=1 in train mode: identity and all zeros', () => {
    const x = randomTensor(new Rng(20), [3, 4]);
    expect(Array.from(new Dropout({ p: 0 }).forward(x).data)).toEqual(Array.from(x.data));
    expect(new Dropout({ p: 1 }).forward(x).data.every((v) => v === 0)).toBe(true);
  });

  it('rejects a probability outside [0, 1]', () => {
    expect(() => new Dropout({ p: 1.5 })).toThrow(/between 0 and 1/);
    expect(() => new AlphaDropout({ p: -0.1 })).toThrow(/between 0 and 1/);
  });
});

describe('AlphaDropout', () => {
  for (const p of [0.1, 0.5]) {
    it(`p=${p} in train mode keeps mean ≈ 0 and variance ≈ 1 of a standard normal input`, () => {
      const n = 200_000;
      const rng = new Rng(21);
      const x = Tensor.zeros([n]);
      for (let i = 0; i < n; i++) x.data[i] = rng.normal();
      const y = new AlphaDropout({ p }, new Rng(22)).forward(x);
      let sum = 0;
      for (const v of y.data) sum += v;
      const mean = sum / n;
      let sq = 0;
      for (const v of y.data) sq += (v - mean) ** 2;
      expect(Math.abs(mean)).toBeLessThanOrEqual(ALPHA_DROPOUT_MOMENT_ATOL);
      expect(Math.abs(sq / n - 1)).toBeLessThanOrEqual(ALPHA_DROPOUT_MOMENT_ATOL);
      // Dropped elements all become the same value a·α'·(1 − p), α' = −λα; about p·n of them.
      const a = 1 / Math.sqrt((AlphaDropout.ALPHA ** 2 * p + 1) * (1 - p));
      const dropped = Math.fround(-AlphaDropout.ALPHA * a * (1 - p));
      let count = 0;
      for (const v of y.data) if (v === dropped) count++;
      expect(Math.abs(count / n - p)).toBeLessThanOrEqual(DROPOUT_KEEP_RATE_ATOL);
    });
  }

  it('is the identity in eval mode', () => {
    const x = randomTensor(new Rng(23), [4, 5]);
    const m = new AlphaDropout({ p: 0.5 }).eval();
    expect(Array.from(m.forward(x).data)).toEqual(Array.from(x.data));
  });
});

describe('Rng', () => {
  it('gives the same sequence for the same seed and a different one for another seed', () => {
    const draw = (seed: number) => {
      const r = new Rng(seed);
      return [r.nextUint32(), r.next(), r.normal(), r.normal(), r.int(1000), r.uniform(-3, 3)];
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    // Seeds are taken as unsigned 32-bit integers.
    expect(draw(-1)).toEqual(draw(0xffffffff));
  });

  it('next() is in [0, 1), uniform(a, b) in [a, b)', () => {
    const r = new Rng(24);
    let bad = 0;
    for (let i = 0; i < 10_000; i++) {
      const u = r.next();
      const v = r.uniform(-2, 5);
      if (!(u >= 0 && u < 1 && v >= -2 && v < 5)) bad++;
    }
    expect(bad).toBe(0);
  });

  it('int(10) is uniform on 0..9 (χ² over 1e5 draws)', () => {
    const r = new Rng(25);
    const counts = new Array<number>(10).fill(0);
    const n = 100_000;
    let outOfRange = 0;
    for (let i = 0; i < n; i++) {
      const k = r.int(10);
      if (Number.isInteger(k) && k >= 0 && k < 10) counts[k]!++;
      else outOfRange++;
    }
    expect(outOfRange).toBe(0);
    const expected = n / 10;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(RNG_CHI_SQUARE_MAX_DF9);
  });

  it('int(1) is always 0, and int rejects n outside (0, 2^32]', () => {
    const r = new Rng(26);
    for (let i = 0; i < 100; i++) expect(r.int(1)).toBe(0);
    expect(() => r.int(0)).toThrow(RangeError);
    expect(() => r.int(2.5)).toThrow(RangeError);
    expect(() => r.int(2 ** 32 + 1)).toThrow(RangeError);
  });

  it('normal() has mean ≈ 0 and variance ≈ 1', () => {
    const r = new Rng(27);
    const n = 100_000;
    let sum = 0;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      sum += v;
      sq += v * v;
    }
    expect(Math.abs(sum / n)).toBeLessThanOrEqual(RNG_NORMAL_MOMENT_ATOL);
    expect(Math.abs(sq / n - (sum / n) ** 2 - 1)).toBeLessThanOrEqual(RNG_NORMAL_MOMENT_ATOL);
  });

  it('permutation(n) is a permutation of 0..n−1, reproducible by seed', () => {
    const p = new Rng(28).permutation(500);
    expect(Array.from(p).sort((a, b) => a - b)).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(Array.from(new Rng(28).permutation(500))).toEqual(Array.from(p));
    expect(Array.from(p)).not.toEqual(Array.from({ length: 500 }, (_, i) => i));
  });
});

describe('AdamW vs Adam with L2: the first step, by hand', () => {
  // At step 1 the bias corrections cancel: m̂ = g', v̂ = g'², so the update is lr·g'/(|g'| + ε).
  // Adam folds λθ into g' = g + λθ; AdamW uses g' = g and first shrinks θ by (1 − lr·λ).
  const lr = 0.1;
  const lambda = 0.1;
  const eps = 1e-8;
  const theta0 = [1, 2, -0.5, 3];
  const grad = [0.5, -0.1, 0.2, 0];

  const step = (make: (p: Parameter[]) => Adam): number[] => {
    const p = new Parameter(Tensor.from(theta0, [4]));
    p.grad.set(grad);
    make([p]).step();
    return Array.from(p.value.data);
  };

  it('Adam adds λθ to the gradient', () => {
    const expected = theta0.map((t, i) => {
      const g = grad[i]! + lambda * t;
      return t - (lr * g) / (Math.abs(g) + eps);
    });
    const actual = step((p) => new Adam(p, { lr, weightDecay: lambda, eps }));
    expectClose(actual, expected, PARAM_ATOL, 'Adam θ1');
  });

  it('AdamW decays θ by (1 − lr·λ) outside the moments', () => {
    const expected = theta0.map((t, i) => {
      const g = grad[i]!;
      return t * (1 - lr * lambda) - (g === 0 ? 0 : (lr * g) / (Math.abs(g) + eps));
    });
    const actual = step((p) => new AdamW(p, { lr, weightDecay: lambda, eps }));
    expectClose(actual, expected, PARAM_ATOL, 'AdamW θ1');
  });

  it('the two differ, even in direction: θ=2, g=−0.1 goes down with Adam and up with AdamW', () => {
    const adam = step((p) => new Adam(p, { lr, weightDecay: lambda, eps }));
    const adamw = step((p) => new AdamW(p, { lr, weightDecay: lambda, eps }));
    expect(adam[1]).toBeLessThan(2);
    expect(adamw[1]).toBeGreaterThan(2);
    // With g = 0 Adam still takes a full lr step (the decay passes through the normalisation),
    // AdamW only shrinks θ by lr·λ·θ.
    expectClose([adam[3]!], [3 - lr], PARAM_ATOL, 'Adam, g = 0');
    expectClose([adamw[3]!], [3 * (1 - lr * lambda)], PARAM_ATOL, 'AdamW, g = 0');
  });

  it('AdamW defaults to weight decay 0.01, Adam to 0', () => {
    const p = [new Parameter(Tensor.zeros([1]))];
    expect(new AdamW(p).weightDecay).toBe(0.01);
    expect(new Adam(p).weightDecay).toBe(0);
    expect(new AdamW(p, { weightDecay: 0 }).weightDecay).toBe(0);
  });
});
