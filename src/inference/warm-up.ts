import { SLICE_VALUES, type Sliced } from '../nn/index.js';
import type { Executor } from './executor.js';
import { planFlopsPerRow } from './plan-flops.js';
import type { StatisticsProbe, StatisticsTap } from './statistics-probe.js';

/**
 * The most work of one warm-up call: the floating-point operations (2 per weight and row) of one
 * row through 8·SLICE_VALUES weights, so a warm-up call holds the thread about as long as a few
 * of the load's slices (nn/slices.ts). A plan whose one row costs more is not warmed: a
 * synchronous call through its weights would be the load's longest turn by far, and next to the
 * cost of its rows the first call's extra is small.
 */
export const WARM_UP_MAX_FLOPS = 2 * 8 * SLICE_VALUES;

/**
 * A new executor's warm-up, as TF Serving's SavedModel warm-up records and Triton's
 * `model_warmup` do before a model is served: a first call pays costs the next ones do not —
 * V8 compiles each WebAssembly function of the engine when it is first called (lazy
 * compilation is on by default on Node 20) and the executor's JavaScript when it runs hot, and
 * the operating system backs each page of the executor's memory when it is first written — and
 * the warm-up pays them before the version serves. Two calls on copies of `row`, one turn each:
 * one row (the path of a 1-row request), then a block of `executor.warmUpRows` rows (bounded by
 * WARM_UP_MAX_FLOPS; never enough to start helper threads) carrying a probe of `taps` (the
 * statistics kernels a live-drift call runs), whose sums are dropped — taps the executor refuses are
 * not warmed: live drift cannot run them either, and the version serves without them, so the
 * warm-up never fails a version over them. Nothing is returned or kept:
 * the executor's outputs for later calls are those of a fresh executor, bit for bit.
 */
export function* warmingUp(
  executor: Executor,
  row: Float32Array,
  taps: readonly StatisticsTap[] = [],
): Sliced<void> {
  const flopsPerRow = planFlopsPerRow(executor.plan);
  if (flopsPerRow > WARM_UP_MAX_FLOPS) return;
  executor.run(row, 1);
  yield;
  const rows = Math.max(
    1,
    Math.min(executor.warmUpRows, Math.floor(WARM_UP_MAX_FLOPS / Math.max(1, flopsPerRow))),
  );
  const block = new Float32Array(rows * row.length);
  for (let r = 0; r < rows; r++) block.set(row, r * row.length);
  const probe = taps.length > 0 ? probeOrNone(executor, taps) : undefined;
  try {
    executor.run(block, rows, probe);
  } finally {
    // Its sums dropped, and the executor's accumulators freed for the probes that count.
    probe?.reset();
  }
}

/**
 * The executor's probe of `taps`, or none where it refuses them (Executor.createProbe's
 * RangeError): an observation the version's serving does not depend on.
 */
function probeOrNone(
  executor: Executor,
  taps: readonly StatisticsTap[],
): StatisticsProbe | undefined {
  try {
    return executor.createProbe(taps);
  } catch {
    return undefined;
  }
}
