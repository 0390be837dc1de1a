import { numelOf, type ProductFootprint, type WasmRunFrame } from '../../nn/index.js';
import type { Shape } from './layer-definition.js';

/**
 * One scratch frame of the training kernels' WebAssembly memory (nn/wasm/wasm-kernels.ts): a
 * matrix product's, or a `run` call's (BatchNorm's passes, channel sums).
 */
export type TrainingFrame = ProductFootprint | WasmRunFrame;

/** What a layer's training footprint is known from: its shapes, the run's rows, where its operands live. */
export interface TrainingFootprintContext {
  /** Its sample input and output shapes (the records' outputShape chain). */
  readonly input: Shape;
  readonly output: Shape;
  readonly batchSize: number;
  /** Rows per eval forward of each evaluation the run makes, in order (validation, test). */
  readonly evalRows: readonly number[];
  /**
   * Whether its input lives in the kernels' memory in a training step: the batch's rows, or the
   * output of a layer that keeps step arrays (passed on by layers whose output views their input).
   */
  readonly inputInMemory: boolean;
  /** Whether the gradient it receives (dY) lives there: the next layer keeps step arrays. */
  readonly gradientInMemory: boolean;
}

/**
 * What a layer's module puts in the training kernels' memory besides its parameters and its
 * per-step arrays: its own work arrays (elements) and its scratch frames in call order — a
 * training step's forward and backward, and one eval forward per evaluation.
 */
export interface TrainingFootprint {
  workArrays: number[];
  forward: TrainingFrame[];
  backward: TrainingFrame[];
  eval: TrainingFrame[][];
}

/** A `run` call's frame: its operands' bytes in ordinary arrays (0: in the memory, not copied). */
export const runFrame = (...bytes: number[]): WasmRunFrame => ({
  operands: bytes.filter((b) => b > 0),
});

/** The bytes of `rows` samples of this shape as float32. */
export const f32Bytes = (rows: number, shape: Shape): number => rows * numelOf(shape) * 4;
