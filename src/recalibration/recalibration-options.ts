import { NormserveError } from '../errors/index.js';

/**
 * How BatchNorm statistics are re-estimated on the target data:
 *  - `exact`: AdaBN (Li et al. 2016, "Revisiting Batch Normalization For Practical Domain
 *    Adaptation"), each BatchNorm gets the mean and unbiased variance of its inputs over all rows;
 *  - `prior`: the source statistics blended with the target ones (Schneider et al. 2020,
 *    "Improving robustness against common corruptions by covariate shift adaptation");
 *  - `running`: train-mode batches with a cumulative average, as torch.optim.swa_utils.update_bn.
 */
export type RecalibrationMode = 'exact' | 'prior' | 'running';

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
  /** Rows per train-mode batch of `running` mode (default 256, 2 ≤ batchSize ≤ MAX_BATCH_SIZE). */
  batchSize?: number;
  /** Rows per forward chunk (default 1024): working memory is bounded by it. */
  chunkRows?: number;
  /** Most rows accepted (default 1 000 000); more is TOO_MANY_SAMPLES. */
  maxSamples?: number;
  onProgress?: (p: RecalibrationProgress) => void;
  /** Awaited between chunks, so that a server's event loop keeps serving. */
  pause?: () => Promise<void>;
}

export const DEFAULT_PRIOR_STRENGTH = 16;
export const DEFAULT_BATCH_SIZE = 256;
export const DEFAULT_CHUNK_ROWS = 1024;
export const DEFAULT_MAX_SAMPLES = 1_000_000;
/**
 * Upper bounds of the options a client chooses. `running` mode holds one batch of rows, so the
 * batch size bounds its memory (65,536 rows of 64 float32 features: 16 MiB); a prior strength
 * beyond 1e9 rows is indistinguishable from keeping the source statistics.
 */
export const MAX_BATCH_SIZE = 65_536;
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
}

const MODES: readonly RecalibrationMode[] = ['exact', 'prior', 'running'];

function integerAtLeast(
  name: string,
  value: number,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `in [${min}, ${max}]`;
    throw new NormserveError(
      'INVALID_INPUT',
      `${name} must be an integer ${range}, got ${String(value)}`,
      {
        errors: [{ path: name, message: `expected an integer ${range}` }],
      },
    );
  }
  return value;
}

/** Fills in the defaults; invalid values are INVALID_INPUT naming the option. */
export function resolveOptions(options: RecalibrationOptions): ResolvedOptions {
  if (!MODES.includes(options.mode)) {
    throw new NormserveError(
      'INVALID_INPUT',
      `mode must be one of ${MODES.join(', ')}, got ${String(options.mode)}`,
      { errors: [{ path: 'mode', message: `expected one of ${MODES.join(', ')}` }] },
    );
  }
  const priorStrength = options.priorStrength ?? DEFAULT_PRIOR_STRENGTH;
  if (!(priorStrength >= 0 && priorStrength <= MAX_PRIOR_STRENGTH)) {
    throw new NormserveError(
      'INVALID_INPUT',
      `priorStrength must be a number in [0, ${MAX_PRIOR_STRENGTH}], got ${String(priorStrength)}`,
      {
        errors: [
          { path: 'priorStrength', message: `expected a number in [0, ${MAX_PRIOR_STRENGTH}]` },
        ],
      },
    );
  }
  return {
    mode: options.mode,
    priorStrength,
    batchSize: integerAtLeast(
      'batchSize',
      options.batchSize ?? DEFAULT_BATCH_SIZE,
      2,
      MAX_BATCH_SIZE,
    ),
    chunkRows: integerAtLeast('chunkRows', options.chunkRows ?? DEFAULT_CHUNK_ROWS, 1),
    maxSamples: integerAtLeast('maxSamples', options.maxSamples ?? DEFAULT_MAX_SAMPLES, 2),
    onProgress: options.onProgress,
    pause: options.pause,
  };
}
