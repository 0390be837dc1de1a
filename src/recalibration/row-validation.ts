import { formatPath, NormserveError } from '../errors/index.js';
import { allFinite } from '../nn/index.js';

/**
 * Number of rows in a chunk of raw features, after checking that it holds whole rows of `width`
 * values and only finite numbers. `firstRow` is the index of its first row among all rows
 * received, so that errors name the row (0-based) and column of the data as a whole.
 */
export function countRows(chunk: Float32Array, width: number, firstRow: number): number {
  const rows = wholeRows(chunk, width);
  checkFiniteRows(chunk, width, firstRow);
  return rows;
}

/** Number of rows in a chunk, after checking only that it holds whole rows of `width` values. */
export function wholeRows(chunk: Float32Array, width: number): number {
  if (chunk.length % width !== 0) {
    throw new NormserveError(
      'INVALID_INPUT',
      `a chunk of ${chunk.length} values is not a whole number of rows of ${width} features`,
    );
  }
  return chunk.length / width;
}

/** INVALID_INPUT naming the first value of the chunk that is not finite (row `firstRow` + r). */
export function checkFiniteRows(chunk: Float32Array, width: number, firstRow: number): void {
  if (allFinite(chunk)) return;
  for (let i = 0; i < chunk.length; i++) {
    const v = chunk[i]!;
    if (!Number.isFinite(v)) {
      const row = firstRow + Math.floor(i / width);
      const column = i % width;
      throw new NormserveError(
        'INVALID_INPUT',
        `row ${row}, column ${column}: ${v} is not a finite number`,
        { errors: [{ path: formatPath([row, column], 'rows'), message: 'not a finite number' }] },
      );
    }
  }
}

/** The 413 TOO_MANY_SAMPLES: the sample limit, then why the upload is over it. */
export function tooManySamples(maxSamples: number, why: string): NormserveError {
  return new NormserveError(
    'TOO_MANY_SAMPLES',
    `at most ${maxSamples} samples are accepted (MAX_RECALIBRATION_SAMPLES); ${why}`,
  );
}

/** TOO_MANY_SAMPLES when `incoming` more rows would exceed `maxSamples`. */
export function checkCapacity(received: number, incoming: number, maxSamples: number): void {
  if (received + incoming > maxSamples) throw tooManySamples(maxSamples, 'the upload has more');
}
