import {
  align,
  CONV,
  convSizes,
  MR,
  NR,
  NR64,
  packedBytes,
  packedBytes64,
  poolTableBytes,
  TILE_SCRATCH_BYTES,
  WASM_PAGE_BYTES,
} from '../../nn/wasm/index.js';
import type { CompiledPlan, PlanStep } from '../plan.js';
import { tensorChannels } from '../statistics-probe.js';
import { MAX_PAGES } from './engine-module.js';
import { CONTROL, PROGRAM, STEP, TAP } from './program-wat.js';

/*
 * Where a model version's program, parameters, I/O regions and per-thread scratch lie in the
 * WebAssembly engine's linear memory (one shared memory per executor, sized once, never grown).
 *
 * The memory goes up to wasm32's 4 GiB (MAX_PAGES), and ordinary models pass 2 GiB: [3, 224, 224]
 * at the default MAX_BATCH_SIZE of 4096 has an input region of 2.3 GiB, after which the output
 * region and every thread's scratch start above 2^31 (test/inference/wasm-memory-above-2gib.test.ts).
 * So a byte offset is an unsigned 32-bit number everywhere: `>>> 2` / `>>> 3` for an index into
 * the memory's typed arrays (`>> 2` makes it negative), and the kernels compare addresses with
 * i32.lt_u / ge_u (their signed comparisons are of row, column and step counts only).
 */

/** Rows of one pass of the I/O regions; a bigger batch loops (memory stays small for wide models). */
const IO_ROWS_CAP = 4096;
/** The most memory an executor can have: wasm32's 4 GiB. */
export const MAX_MEMORY_BYTES = MAX_PAGES * WASM_PAGE_BYTES;
/**
 * A chunk's two buffers together fill L2 (512 KiB per core here) for the widest layer. Every chunk
 * streams each layer's packed weights once, so more rows per chunk means fewer passes over them:
 * 64 rows of the wide 784-1024-1024-10 model (rather than 32 with 256 KiB) took 7–10 % less CPU
 * time per row, one thread or two, in A/B runs on the 2-core machine (bench/README.md).
 */
const CHUNK_BUFFER_BYTES = 512 * 1024;
/** Rows of a chunk at most (a narrow model's chunk would otherwise hold thousands). */
const MAX_CHUNK_ROWS = 1024;
/**
 * Every region ends in this much slack: the engine's f32x4 loads at a row's end may read 12 bytes
 * past it. (The training kernels' blocks end in 64, BLOCK_SLACK in nn/wasm/wasm-kernels.ts: their
 * loads read further; each memory's slack is its own kernels'.)
 */
export const ROW_SLACK = 16;

/**
 * The room a probe's taps have (WasmProbe refuses more): every tensor reading four times (exact
 * and three clips) and every BatchNorm's input once more (clipped at its own running
 * statistics), in records, accumulators (16 bytes a channel), shifts (8 bytes a channel) and
 * clip bounds (8 bytes a channel): a few KiB per thread for the bundled models.
 */
export interface TapCapacity {
  records: number;
  channels: number;
}

export function tapCapacity(plan: CompiledPlan): TapCapacity {
  const positions = 2 * (plan.steps.length + 1);
  const natural = tensorChannels(plan).reduce((a, b) => a + b, 0);
  const batchNorm = plan.batchNormInputs.reduce((a, b) => a + b.channels, 0);
  return {
    records: 4 * positions + plan.batchNormInputs.length,
    channels: 8 * natural + batchNorm,
  };
}

export interface Layout {
  /**
   * Rows of one pass of the I/O regions: maxBatchSize, at most IO_ROWS_CAP, and fewer when that
   * many rows of input and output would not fit in MAX_MEMORY_BYTES (a conv model on
   * [3, 320, 320] passes 3,485 rows at a time, on [3, 448, 448] 1,774).
   */
  ioRows: number;
  chunkRows: number;
  bufferBytes: number;
  /** From a thread's scratch: its skip buffers, its convolution scratch (bytes). */
  skipsAt: number;
  convAt: number;
  controls: number[];
  program: number;
  /** The tap table and its records (PROGRAM.taps points here during a statistics call). */
  tapTable: number;
  /** What a probe may use: tap records, and channels of their accumulators and clip bounds. */
  tapCapacity: TapCapacity;
  /** Offset of the tap accumulators within a thread's scratch, and their size. */
  accumulators: number;
  accumulatorBytes: number;
  params: number[];
  input: number;
  output: number;
  scratch: number[];
  bytes: number;
  /** Dense steps run on gemm64 (float64 B and bias). */
  dense64: boolean;
}

function paramBytes(step: PlanStep, dense64: boolean): number[] {
  switch (step.op) {
    case 'dense':
      if (dense64)
        return [
          packedBytes64(step.inFeatures, step.outFeatures),
          align(step.outFeatures, NR64) * 8,
        ];
      return [packedBytes(step.inFeatures, step.outFeatures), align(step.outFeatures, NR) * 4];
    case 'affine': {
      // Per value of the row, float64: a per-channel scale is repeated over its spatial positions.
      const features = step.channels * step.spatial;
      return [align(features, 4) * 8, align(features, 4) * 8];
    }
    case 'layernorm':
      return step.weight && step.bias
        ? [align(step.groupSize, 4) * 4, align(step.groupSize, 4) * 4]
        : [];
    case 'conv2d': {
      // Descriptor, weight [out, K] as it is (the GEMM's A), bias, koff table, lane groups.
      const { koffBytes, lanesBytes } = convSizes(step.geometry);
      return [CONV.bytes, step.weight.length * 4, step.outChannels * 4, koffBytes, lanesBytes];
    }
    case 'maxpool2d':
    case 'avgpool2d':
      return [poolTableBytes(step.windows)];
    case 'activation':
    case 'save_skip':
    case 'add_skip':
      return [];
  }
}

/**
 * Where everything lives in the version's linear memory. The I/O regions hold as many rows as
 * asked for (up to IO_ROWS_CAP) when they fit in MAX_MEMORY_BYTES, else as many as fit (a bigger
 * batch loops over them anyway); `bytes` exceeds MAX_MEMORY_BYTES only when one row does not fit.
 */
export function planLayout(
  plan: CompiledPlan,
  maxBatchSize: number,
  threads: number,
  dense64 = false,
): Layout {
  const wanted = Math.max(1, Math.min(maxBatchSize, IO_ROWS_CAP));
  const layout = layoutWithRows(plan, wanted, threads, dense64);
  if (layout.bytes <= MAX_MEMORY_BYTES || wanted === 1) return layout;
  // The most rows that fit: bytes grow with the rows, so a binary search (12 layouts at most).
  let fits = 1;
  let over = wanted;
  while (over - fits > 1) {
    const rows = Math.floor((fits + over) / 2);
    if (layoutWithRows(plan, rows, threads, dense64).bytes <= MAX_MEMORY_BYTES) fits = rows;
    else over = rows;
  }
  return layoutWithRows(plan, fits, threads, dense64);
}

function layoutWithRows(
  plan: CompiledPlan,
  ioRows: number,
  threads: number,
  dense64: boolean,
): Layout {
  const chunkRows = Math.max(
    MR,
    Math.min(MAX_CHUNK_ROWS, Math.floor(CHUNK_BUFFER_BYTES / 2 / (plan.maxWidth * 4) / MR) * MR),
  );
  const bufferBytes = align(chunkRows * plan.maxWidth * 4 + ROW_SLACK);
  let at = 64; // the first 64 bytes stay zero
  const controls = Array.from({ length: threads - 1 }, () => {
    const c = at;
    at += CONTROL.bytes;
    return c;
  });
  const program = at;
  at = align(at + PROGRAM.headerBytes + plan.steps.length * STEP.bytes);
  // Two readings per tensor at most (output, pre-activation), each no finer than its channels.
  const positions = 2 * (plan.steps.length + 1);
  const capacity = tapCapacity(plan);
  const tapTable = at;
  // Records, then their shifts (f64 a channel), then their clip bounds (2 × f32 a channel).
  at = align(at + positions * 4 + capacity.records * TAP.bytes + capacity.channels * 16);
  const accumulatorBytes = 2 * 8 * capacity.channels;
  const params: number[] = [];
  let largestWeight = 0;
  for (const step of plan.steps) {
    for (const size of paramBytes(step, dense64)) {
      params.push(at);
      at = align(at + size);
    }
    if (step.op === 'dense') largestWeight = Math.max(largestWeight, step.weight.length * 4);
  }
  // The input region also stages each weight matrix while it is packed.
  const input = at;
  at = align(at + Math.max(ioRows * plan.inputWidth * 4, largestWeight) + ROW_SLACK);
  const output = at;
  at = align(at + ioRows * plan.outputWidth * 4 + ROW_SLACK);
  // Each thread's two chunk buffers, its GEMM tile scratch, a buffer per skip slot, the scratch of
  // its largest convolution, then its tap accumulators.
  const skipsAt = align(2 * bufferBytes + TILE_SCRATCH_BYTES);
  const convAt = skipsAt + plan.skipSlots * bufferBytes;
  // A fold, not Math.max(...steps): one argument per step overflows the stack on long plans.
  const convBytes = plan.steps.reduce(
    (most, s) => (s.op === 'conv2d' ? Math.max(most, convSizes(s.geometry).scratchBytes) : most),
    0,
  );
  const accumulators = align(convAt + convBytes);
  const scratch = Array.from({ length: threads }, () => {
    const s = at;
    at += align(accumulators + accumulatorBytes + ROW_SLACK);
    return s;
  });
  return {
    ioRows,
    chunkRows,
    bufferBytes,
    skipsAt,
    convAt,
    controls,
    program,
    tapTable,
    tapCapacity: capacity,
    accumulators,
    accumulatorBytes,
    params,
    input,
    output,
    scratch,
    bytes: at,
    dense64,
  };
}
