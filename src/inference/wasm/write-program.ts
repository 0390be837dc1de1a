import { copySliced, finish, SLICE_VALUES, type Sliced } from '../../nn/index.js';
import {
  NR,
  packedBytes64,
  packWeight64,
  writeConvDescriptor,
  writePoolTable,
} from '../../nn/wasm/index.js';
import { activationCode } from '../kernels.js';
import { type CompiledPlan, slopeOf } from '../plan.js';
import { planFlopsPerRow } from '../plan-flops.js';
import type { EngineExports } from './engine-module.js';
import type { Layout } from './memory-layout.js';
import { OP, PROGRAM, STEP } from './program-wat.js';

/** A per-channel vector repeated over `spatial` positions each (as the affine kernel reads it). */
function perValue(values: Float64Array, spatial: number): Float64Array {
  if (spatial === 1) return values;
  const out = new Float64Array(values.length * spatial);
  for (let c = 0; c < values.length; c++) out.fill(values[c]!, c * spatial, (c + 1) * spatial);
  return out;
}

/** Columns of B (rows of a Linear's weight) staged and packed per slice: whole panels of NR. */
const packColumns = (inFeatures: number): number =>
  Math.max(NR, Math.floor(SLICE_VALUES / inFeatures / NR) * NR);

/**
 * Writes the program and the parameters (weights packed by the engine's own pack_b, staged in the
 * input region) into memory; returns the floating-point operations per row.
 */
export function writeProgram(
  plan: CompiledPlan,
  layout: Layout,
  memory: WebAssembly.Memory,
  x: EngineExports,
): number {
  return finish(writingProgram(plan, layout, memory, x));
}

/**
 * writeProgram in slices (nn/slices.ts): a dense step's weight is staged and packed a block of
 * whole NR-column panels at a time (about SLICE_VALUES values; panel p of B lies at
 * p·K·NR floats whatever block packs it, so the blocks give the bytes one pack_b call gives),
 * other large parameters copied SLICE_VALUES values at a time.
 */
export function* writingProgram(
  plan: CompiledPlan,
  layout: Layout,
  memory: WebAssembly.Memory,
  x: EngineExports,
): Sliced<number> {
  const i32 = new Int32Array(memory.buffer);
  const f32 = new Float32Array(memory.buffer);
  const f64 = new Float64Array(memory.buffer);
  const base = layout.program >>> 2;
  i32[base + PROGRAM.steps] = plan.steps.length;
  i32[base + PROGRAM.inWidth] = plan.inputWidth;
  i32[base + PROGRAM.outWidth] = plan.outputWidth;
  i32[base + PROGRAM.chunkRows] = layout.chunkRows;
  i32[base + PROGRAM.bufferBytes] = layout.bufferBytes;
  i32[base + PROGRAM.skipsAt] = layout.skipsAt;
  i32[base + PROGRAM.convAt] = layout.convAt;
  i32[base + PROGRAM.taps] = 0;
  i32[base + PROGRAM.limit] = plan.steps.length;
  i32[base + PROGRAM.accumulators] = layout.accumulators;
  let param = 0;
  for (const [i, step] of plan.steps.entries()) {
    const st = layout.program + PROGRAM.headerBytes + i * STEP.bytes;
    const w = st >>> 2;
    i32[w + STEP.activation] = activationCode(step.activation);
    f32[w + STEP.slope] = slopeOf(step.activation);
    switch (step.op) {
      case 'dense': {
        const [packed, bias] = [layout.params[param++]!, layout.params[param++]!];
        i32[w + STEP.inFeatures] = step.inFeatures;
        i32[w + STEP.outFeatures] = step.outFeatures;
        i32[w + STEP.first] = packed;
        i32[w + STEP.second] = bias;
        if (layout.dense64) {
          const words = packedBytes64(step.inFeatures, step.outFeatures) / 8;
          packWeight64(
            step.weight,
            step.inFeatures,
            step.outFeatures,
            f64.subarray(packed >>> 3, (packed >>> 3) + words),
          );
          f64.set(step.bias, bias >>> 3);
          i32[w + STEP.op] = OP.dense64;
          break;
        }
        // B = Wᵀ: B[k, n] = W[n, k], so k advances by one float and n by a row of W. Columns
        // [n0, n0 + cols) are rows n0… of W, staged at the input region and packed to panel n0/NR.
        const k = step.inFeatures;
        const block = packColumns(k);
        for (let n0 = 0; n0 < step.outFeatures; n0 += block) {
          const cols = Math.min(block, step.outFeatures - n0);
          f32.set(step.weight.subarray(n0 * k, (n0 + cols) * k), layout.input >>> 2);
          x.pack_b(layout.input, 4, k * 4, k, cols, packed + n0 * k * 4);
          yield;
        }
        f32.set(step.bias, bias >>> 2);
        i32[w + STEP.op] = OP.dense;
        break;
      }
      case 'affine': {
        const [scale, shift] = [layout.params[param++]!, layout.params[param++]!];
        const features = step.channels * step.spatial;
        f64.set(perValue(step.scale, step.spatial), scale >>> 3);
        f64.set(perValue(step.shift, step.spatial), shift >>> 3);
        i32[w + STEP.op] = OP.affine;
        i32[w + STEP.inFeatures] = features;
        i32[w + STEP.outFeatures] = features;
        i32[w + STEP.first] = scale;
        i32[w + STEP.second] = shift;
        break;
      }
      case 'layernorm': {
        // Each row is `groups` rows of groupSize values to the kernel.
        i32[w + STEP.op] = OP.layernorm;
        i32[w + STEP.inFeatures] = step.groupSize;
        i32[w + STEP.outFeatures] = step.groups * step.groupSize;
        i32[w + STEP.extra] = step.groups;
        if (step.weight && step.bias) {
          const [gamma, beta] = [layout.params[param++]!, layout.params[param++]!];
          f32.set(step.weight, gamma >>> 2);
          f32.set(step.bias, beta >>> 2);
          i32[w + STEP.first] = gamma;
          i32[w + STEP.second] = beta;
        }
        f64[(st + STEP.epsByteOffset) >>> 3] = step.eps;
        break;
      }
      case 'conv2d': {
        const [descriptor, weight, bias, koff, lanes] = layout.params.slice(param, param + 5) as [
          number,
          number,
          number,
          number,
          number,
        ];
        param += 5;
        const g = step.geometry;
        yield* copySliced(f32, step.weight, weight >>> 2);
        f32.set(step.bias, bias >>> 2);
        writeConvDescriptor(memory.buffer, descriptor, g, step.outChannels, {
          weight,
          bias,
          koff,
          lanes,
        });
        const positions = g.outH * g.outW;
        i32[w + STEP.op] = OP.conv2d;
        i32[w + STEP.inFeatures] = g.channels * g.inH * g.inW;
        i32[w + STEP.outFeatures] = step.outChannels * positions;
        i32[w + STEP.first] = descriptor;
        break;
      }
      case 'maxpool2d':
      case 'avgpool2d': {
        const table = layout.params[param++]!;
        const win = step.windows;
        writePoolTable(memory.buffer, table, win);
        i32[w + STEP.op] = step.op === 'maxpool2d' ? OP.maxpool2d : OP.avgpool2d;
        i32[w + STEP.inFeatures] = step.channels * win.inH * win.inW;
        i32[w + STEP.outFeatures] = step.channels * win.outH * win.outW;
        i32[w + STEP.first] = table;
        i32[w + STEP.second] = win.inW * 4;
        i32[w + STEP.extra] = step.channels;
        break;
      }
      case 'save_skip':
      case 'add_skip':
        i32[w + STEP.op] = step.op === 'save_skip' ? OP.save_skip : OP.add_skip;
        i32[w + STEP.inFeatures] = step.features;
        i32[w + STEP.outFeatures] = step.features;
        i32[w + STEP.extra] = step.slot;
        break;
      case 'activation':
        i32[w + STEP.op] = OP.activation;
        i32[w + STEP.inFeatures] = step.features;
        i32[w + STEP.outFeatures] = step.features;
        break;
    }
    yield;
  }
  return planFlopsPerRow(plan);
}
