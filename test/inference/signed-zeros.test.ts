/**
 * The sign of zero against PyTorch 1.13 (test/fixtures/torch/signed-zeros.json, written by
 * tools/make-signed-zero-fixtures.py): networks whose weights, biases, BatchNorm statistics and
 * inputs hold ±0, on every executor (the JavaScript reference; wasm with and without relaxed FMA,
 * float32 and float64 dense accumulation), from the plan with its BatchNorms folded and without,
 * and nn's eval forward on both kernel sets. A zero PyTorch gives is compared bit for bit (its
 * sign included); another value within NONZERO_RTOL (folding and the activations' vector math
 * move the last bits of those, not their sign).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildSequential, layerListSchema } from '../../src/checkpoint/index.js';
import {
  compileNetwork,
  detectWasmSupport,
  type Executor,
  PlanExecutor,
  WasmExecutor,
} from '../../src/inference/index.js';
import type { CompiledPlan } from '../../src/inference/plan.js';
import {
  createKernels,
  type Kernels,
  referenceKernels,
  type StateDict,
  Tensor,
} from '../../src/nn/index.js';
import { prepareWasmRuntime } from '../../src/service/index.js';

prepareWasmRuntime();
const relaxedVariants = detectWasmSupport().relaxedSimd ? [false, true] : [false];

/** Non-zero outputs: float32 ulps of folding (diag(s)·W rounded) and of the vector math. */
const NONZERO_RTOL = 1e-5;

interface Bits {
  shape: number[];
  bits: number[];
}
interface SignedZeroCase {
  name: string;
  input_shape: number[];
  /** Config entries as written (PyTorch's defaults left out): parsed as config.json's are. */
  layers: unknown[];
  state: Record<string, Bits>;
  rows: number;
  input: number[];
  output: number[];
}
interface Fixture {
  torch_version: string;
  cases: SignedZeroCase[];
  softmax: { rows: number; width: number; input: number[]; output: number[] };
}

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/torch/signed-zeros.json', import.meta.url), 'utf8'),
) as Fixture;

const floats = (bits: readonly number[]): Float32Array =>
  new Float32Array(Uint32Array.from(bits).buffer);
const NEGATIVE_ZERO = 0x80000000;
const show = (bits: number): string => (bits === NEGATIVE_ZERO ? '−0' : String(floats([bits])[0]));

/** The outputs that differ from PyTorch's: every zero by its bits, the rest within NONZERO_RTOL. */
function mismatches(got: Float32Array, want: readonly number[]): string[] {
  const gotBits = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const wantValues = floats(want);
  const bad: string[] = [];
  want.forEach((w, i) => {
    const g = gotBits[i]!;
    const zero = w === 0 || w === NEGATIVE_ZERO;
    const ok = zero
      ? g === w
      : Math.abs(got[i]! - wantValues[i]!) <= NONZERO_RTOL * Math.abs(wantValues[i]!);
    if (!ok) bad.push(`[${i}] ${show(g)}, PyTorch ${show(w)}`);
  });
  return bad;
}

function network(c: SignedZeroCase) {
  const net = buildSequential(layerListSchema.parse(c.layers));
  const state: StateDict = new Map(
    Object.entries(c.state).map(([name, t]) => [name, new Tensor(floats(t.bits), t.shape)]),
  );
  // num_batches_tracked: the fixture keeps float tensors only.
  for (const [name, value] of net.stateDict()) if (!state.has(name)) state.set(name, value);
  net.loadStateDict(state);
  return net.eval();
}

/** nn's kernel sets (one wasm instance for the file: its memory is never freed). */
const wasmKernels = createKernels('wasm');
const kernelSets: [string, Kernels][] = [['js', referenceKernels]];
if (wasmKernels.fallback === undefined) kernelSets.push(['wasm', wasmKernels.kernels]);

/** Every executor the suite runs plans on, by name. */
function executors(plan: CompiledPlan, rows: number): [string, Executor][] {
  const list: [string, Executor][] = [['js', new PlanExecutor(plan, rows)]];
  for (const relaxed of relaxedVariants) {
    for (const dense of ['float32', 'float64'] as const) {
      list.push([
        `wasm${relaxed ? ' relaxed' : ''} ${dense}`,
        new WasmExecutor(plan, {
          maxBatchSize: rows,
          threads: 1,
          relaxedSimd: relaxed,
          denseAccumulation: dense,
        }),
      ]);
    }
  }
  return list;
}

describe(`signed zeros as PyTorch ${fixture.torch_version} gives them`, () => {
  for (const c of fixture.cases) {
    describe(c.name, () => {
      const input = floats(c.input);
      for (const fold of [true, false]) {
        it(`${fold ? 'folded' : 'unfolded'} plan, every executor`, () => {
          const plan = compileNetwork(network(c), undefined, c.input_shape, {
            foldBatchNorms: fold,
          });
          const failures: string[] = [];
          for (const [name, executor] of executors(plan, c.rows)) {
            const bad = mismatches(executor.run(input, c.rows), c.output);
            if (bad.length > 0) failures.push(`${name}: ${bad.join('; ')}`);
            executor.close();
          }
          expect(failures).toEqual([]);
        });
      }
      it("nn's eval forward, both kernel sets", () => {
        const failures: string[] = [];
        for (const [name, kernels] of kernelSets) {
          const net = network(c).useKernels(kernels);
          const got = net.forward(new Tensor(input, [c.rows, ...c.input_shape])).data;
          const bad = mismatches(got, c.output);
          if (bad.length > 0) failures.push(`${name}: ${bad.join('; ')}`);
        }
        expect(failures).toEqual([]);
      });
    });
  }

  it('softmax of ±0 logits, both executors', () => {
    const { rows, width } = fixture.softmax;
    const plan = compileNetwork(buildSequential([{ type: 'identity' }]), undefined, [width]);
    const failures: string[] = [];
    for (const [name, executor] of executors(plan, rows)) {
      const bad = mismatches(
        executor.softmax(floats(fixture.softmax.input), rows, width),
        fixture.softmax.output,
      );
      if (bad.length > 0) failures.push(`${name}: ${bad.join('; ')}`);
      executor.close();
    }
    expect(failures).toEqual([]);
  });
});
