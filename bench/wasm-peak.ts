/**
 * The WebAssembly SIMD ceiling of this machine: a register-only kernel of independent f32x4
 * multiply-add chains (no loads, no stores), as many as fit in V8's 16 x64 vector registers with
 * the two constants (CHAINS), in interleaved rounds (median, and the best round), per CPU-second
 * of the process. `relaxed_madd` is one fused instruction per 8 flops; mul+add is two. No real kernel
 * can go faster than this on one thread, so it is the yardstick for "how close to the ceiling"
 * and for which speed goals 128-bit WebAssembly can reach at all.
 */
import { assembleWat, locals, range } from '../src/nn/wasm/index.js';

/** Independent accumulator chains: 12 + 2 constants fit the 15 vector registers V8 allocates. */
export const CHAINS = 12;
/** Floating-point operations per chain and iteration: 4 lanes × (multiply + add). */
const FLOPS_PER_STEP = 8;

const step = (fused: boolean, acc: string): string =>
  fused
    ? `(local.set ${acc} (f32x4.relaxed_madd (local.get ${acc}) (local.get $m) (local.get $c)))`
    : `(local.set ${acc} (f32x4.add (f32x4.mul (local.get ${acc}) (local.get $m)) (local.get $c)))`;

/**
 * peak(iterations) → a lane of the chains' sum (so that nothing is dead code). Each chain is
 * x ← x·m + c with m < 1: it converges to c/(1 − m), never overflowing nor going subnormal.
 */
function peakFunction(name: string, fused: boolean): string {
  const accs = range(CHAINS).map((i) => `$x${i}`);
  return `
  (func (export "${name}") (param $n i32) (result f32)
    ${locals('v128', ...accs.map((a) => a.slice(1)), 'm', 'c')}
    (local.set $m (f32x4.splat (f32.const 0.999)))
    (local.set $c (f32x4.splat (f32.const 0.001)))
    ${accs.map((a, i) => `(local.set ${a} (f32x4.splat (f32.const ${i})))`).join('\n    ')}
    (loop $l
      ${accs.map((a) => step(fused, a)).join('\n      ')}
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (f32x4.extract_lane 0 ${accs
      .slice(1)
      .reduce((sum, a) => `(f32x4.add ${sum} (local.get ${a}))`, `(local.get ${accs[0]})`)}))`;
}

export interface WasmPeak {
  /** GFLOP/s of the relaxed_madd chains, median round (undefined without relaxed SIMD). */
  fmaGflops: number | undefined;
  /** GFLOP/s of the f32x4.mul + f32x4.add chains, median round. */
  mulAddGflops: number;
  /** The best round of each: the nearest to the machine's capability when other load preempts. */
  fmaBestGflops: number | undefined;
  mulAddBestGflops: number;
  chains: number;
}

type Peak = (iterations: number) => number;

/** Both kernels, one thread, `rounds` interleaved rounds of about `budgetMs` each; medians. */
export function measureWasmPeak(relaxedSimd: boolean, rounds: number, budgetMs: number): WasmPeak {
  const text = `(module ${relaxedSimd ? peakFunction('fma', true) : ''} ${peakFunction('muladd', false)})`;
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(assembleWat(text)));
  const kernels = { fma: exports['fma'] as Peak | undefined, muladd: exports['muladd'] as Peak };
  const iterations = 200_000; // 19.2 MFLOP a call: ~0.5 ms at 40 GFLOP/s
  const rates: Record<string, number[]> = { fma: [], muladd: [] };
  // Per CPU-second of this (single-threaded) process, not per wall-clock second: a round the
  // scheduler preempts would otherwise count the time it waited; a peak is what a core can do.
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const once = (kernel: Peak): number => {
    let calls = 0;
    let sink = 0;
    const start = cpuMs();
    let elapsed = 0;
    do {
      sink += kernel(iterations);
      calls++;
      elapsed = cpuMs() - start;
    } while (elapsed < budgetMs);
    if (!Number.isFinite(sink)) throw new Error('wasm peak: the chains diverged');
    return (calls * iterations * CHAINS * FLOPS_PER_STEP) / (elapsed * 1e6);
  };
  for (const k of Object.values(kernels)) k?.(iterations); // compiled and warm
  for (let r = 0; r < rounds; r++) {
    for (const [name, k] of Object.entries(kernels)) if (k) rates[name]!.push(once(k));
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!;
  return {
    fmaGflops: kernels.fma ? median(rates['fma']!) : undefined,
    mulAddGflops: median(rates['muladd']!),
    fmaBestGflops: kernels.fma ? Math.max(...rates['fma']!) : undefined,
    mulAddBestGflops: Math.max(...rates['muladd']!),
    chains: CHAINS,
  };
}
