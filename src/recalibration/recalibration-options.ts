import {
  describeInput,
  inNumberRange,
  NormserveError,
  type NumberRange,
  rangeMessage,
} from '../errors/index.js';
import type { EngineOptions } from '../inference/index.js';
import type { RowStore } from './row-store.js';

/**
 * How BatchNorm statistics are re-estimated on the target data:
 *  - `exact`: AdaBN (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain
 *    Adaptation"), each BatchNorm gets the mean and unbiased variance of its inputs over all rows;
 *  - `prior`: the source statistics blended with the target ones (Schneider et al. 2020,
 *    "Improving robustness against common corruptions by covariate shift adaptation");
 *  - `running`: train-mode batches with a cumulative average, as torch.optim.swa_utils.update_bn.
 */
export const RECALIBRATION_MODES = ['exact', 'prior', 'running'] as const;
export type RecalibrationMode = (typeof RECALIBRATION_MODES)[number];

/**
 * A progress report; while one BatchNorm's statistics are computed, `layer` is its top-level index
 * and `path` its state-dict prefix (`"3.body.1"` inside a block).
 */
export interface RecalibrationProgress {
  phase: 'receiving' | 'statistics';
  rows: number;
  totalRows: number;
  layer?: number;
  path?: string;
}

export interface RecalibrationOptions {
  mode: RecalibrationMode;
  /** Prior strength N of `prior` mode, in rows (default 16, 0 ≤ N ≤ MAX_PRIOR_STRENGTH). */
  priorStrength?: number;
  /**
   * Rows per train-mode batch of `running` mode (default 256, 1 ≤ batchSize ≤
   * MAX_RECALIBRATION_BATCH_SIZE; 2 at least where one row gives a BatchNorm one value per
   * channel).
   */
  batchSize?: number;
  /**
   * Rows per executor call (default 4096): pushes are taken and stored rows read back in slices
   * of this many rows, with pause() between them; working memory is bounded by it.
   */
  chunkRows?: number;
  /** Most rows accepted (default 1 000 000); more is TOO_MANY_SAMPLES. */
  maxSamples?: number;
  onProgress?: (p: RecalibrationProgress) => void;
  /** Awaited between chunks, so that a server's event loop keeps serving. */
  pause?: () => Promise<void>;
  /**
   * The engine that gathers the statistics (createExecutor's options; default: the wasm engine
   * where it can run the plan, else the JavaScript one). One thread is the default and the
   * sensible choice: a recalibration builds one executor per BatchNorm.
   */
  engine?: EngineOptions;
  /**
   * Where `exact` and `prior` keep the rows until every BatchNorm has read them (default: in
   * memory). The service passes a store that spills to a temporary file past a budget.
   */
  rowStore?: (width: number, blockRows: number) => RowStore;
}

export const DEFAULT_PRIOR_STRENGTH = 16;
export const DEFAULT_BATCH_SIZE = 256;
export const DEFAULT_CHUNK_ROWS = 4096;
export const DEFAULT_MAX_SAMPLES = 1_000_000;
/**
 * The most work one synchronous statistics call does on the calling thread (a server's event
 * loop) before pause(): the passes that run there measure each stored chunk (or batch) in slices
 * of ⌊budget ÷ the prefix plan's flops per row⌋ rows (LayerInputStatistics.measureInSlices).
 * 50 MFLOP is 2–3 ms on the wasm engine at the 17–23 GFLOP/s measured for digits-cnn's prefix
 * plans on a 2-core machine, and about 10 ms at the 5 GFLOP/s of a small float64 dense plan:
 * under ~20 ms with room for a loaded machine or a slower engine, where a whole chunk of 4,096 rows
 * through digits-cnn's last prefix (765,056 flops a row) held the loop for ~150 ms.
 */
export const SYNC_SLICE_BUDGET_FLOPS = 50e6;
/**
 * Bytes of a new executor's memory backed per turn before the first pass runs on the calling
 * thread (LayerInputStatistics.prefault): the page faults the budget above does not count. 2 MiB
 * is 512 pages, about 1 ms at the ~1.7 µs a page measured for touching a first-pass executor's
 * 17.6 MiB (digits-cnn, 4,096 rows) in 7.6–8.6 ms.
 */
export const PREFAULT_SLICE_BYTES = 2 * 1024 * 1024;
/**
 * Upper bounds of the options a client chooses. `running` mode holds one batch of rows, so the
 * batch size bounds its memory (65,536 rows of 64 float32 features: 16 MiB). A prior strength of
 * 10¹² rows leaves the target a weight of a millionth against DEFAULT_MAX_SAMPLES (10⁶) rows:
 * as good as keeping the source statistics (test/recalibration/prior.test.ts, "N = 1e12 keeps
 * the source statistics"), so no client needs more. (A bound of 1e9 refused that case.)
 */
export const MAX_RECALIBRATION_BATCH_SIZE = 65_536;
export const MAX_PRIOR_STRENGTH = 1e12;

/** Options with defaults filled in and checked. */
export interface ResolvedOptions {
  mode: RecalibrationMode;
  priorStrength: number;
  batchSize: number;
  chunkRows: number;
  maxSamples: number;
  onProgress: ((p: RecalibrationProgress) => void) | undefined;
  pause: (() => Promise<void>) | undefined;
  engine: EngineOptions;
  rowStore: ((width: number, blockRows: number) => RowStore) | undefined;
}

/**
 * The values of the numeric options, for their checks here and a CLI's flags. `batchSize` from 1:
 * whether one row is a batch depends on the network (a BatchNorm1d needs two, a BatchNorm2d on
 * 8×8 maps takes one), which createRecalibrator checks (batch-norm-layers.ts).
 */
export const BATCH_SIZE_RANGE: NumberRange = {
  integer: true,
  min: 1,
  max: MAX_RECALIBRATION_BATCH_SIZE,
};
export const PRIOR_STRENGTH_RANGE: NumberRange = {
  integer: false,
  min: 0,
  max: MAX_PRIOR_STRENGTH,
};

/** `value` if it is within `range`, else INVALID_INPUT naming the option: `batchSize: expected …`. */
function checked(name: string, value: number, range: NumberRange): number {
  if (inNumberRange(range, value)) return value;
  const message = rangeMessage(range, value);
  throw new NormserveError('INVALID_INPUT', `${name}: ${message}`, {
    errors: [{ path: name, message }],
  });
}

export function resolveOptions(options: RecalibrationOptions): ResolvedOptions {
  if (!RECALIBRATION_MODES.includes(options.mode)) {
    const message = `expected one of ${RECALIBRATION_MODES.map((m) => JSON.stringify(m)).join(', ')}, got ${describeInput(options.mode)}`;
    throw new NormserveError('INVALID_INPUT', `mode: ${message}`, {
      errors: [{ path: 'mode', message }],
    });
  }
  const priorStrength = checked(
    'priorStrength',
    options.priorStrength ?? DEFAULT_PRIOR_STRENGTH,
    PRIOR_STRENGTH_RANGE,
  );
  return {
    mode: options.mode,
    priorStrength,
    batchSize: checked('batchSize', options.batchSize ?? DEFAULT_BATCH_SIZE, BATCH_SIZE_RANGE),
    chunkRows: checked('chunkRows', options.chunkRows ?? DEFAULT_CHUNK_ROWS, {
      integer: true,
      min: 1,
    }),
    maxSamples: checked('maxSamples', options.maxSamples ?? DEFAULT_MAX_SAMPLES, {
      integer: true,
      min: 2,
    }),
    onProgress: options.onProgress,
    pause: options.pause,
    engine: options.engine ?? {},
    rowStore: options.rowStore,
  };
}
