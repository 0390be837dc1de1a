import type { LayerShift } from './layer-shift.js';

export interface RecalibrationResult {
  /** Rows received. */
  samples: number;
  /** One entry per BatchNorm, in network order. */
  layers: LayerShift[];
  /** `running` mode: train-mode batches forwarded (= each BatchNorm's num_batches_tracked). */
  batches?: number;
  /** `running` mode: rows left out, i.e. a final batch of a single row (0 or 1). */
  skipped?: number;
}

/**
 * A recalibration fed chunk by chunk. It owns the network it was given (a private copy) until
 * finish() settles: pushes may already update its statistics, finish() writes the new
 * running_mean/running_var in place. Calls must not overlap (await each one).
 */
export interface Recalibrator {
  /** Rows received so far. */
  readonly rows: number;
  /** The fewest rows finish() accepts (batch-norm-layers.ts, minimumRows): fewer are TOO_FEW_SAMPLES. */
  readonly minimumRows: number;
  /**
   * Whole rows, [k, width] row-major raw features (before the input transform). The chunk is
   * validated before any of it is used (INVALID_INPUT, TOO_MANY_SAMPLES) and may be reused by the
   * caller once the promise settles: the rows kept are copies. Work is done in slices of
   * `chunkRows` rows with pause() awaited after each; if pause() rejects, push rejects with its
   * error and the slices already taken stay received (see `rows`).
   */
  push(chunk: Float32Array): Promise<void>;
  /**
   * Computes and writes the statistics; afterwards the recalibrator is closed. On failure the
   * network's buffers and modes are restored to what they were before the recalibration.
   */
  finish(): Promise<RecalibrationResult>;
  /**
   * Gives the recalibration up without finishing it: the network's statistics are restored and
   * what it holds (stored rows, spill files, executors) is released. A no-op once finish() or
   * abort() was called; not while a push() is running.
   */
  abort(): Promise<void>;
}
