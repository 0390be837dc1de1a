import {
  FLOAT32_RANGE_MESSAGE,
  notANumberMessage,
  roundsToFiniteFloat32,
  rowWidthMessage,
} from './input-shape.js';

/** What is wrong with one NDJSON line of rows: the line itself, or its value at `column`. */
export interface NdjsonRowProblem {
  column?: number;
  message: string;
}

/**
 * One line of NDJSON rows (an HTTP upload's, the recalibrate CLI's data file's) read by
 * JSON.parse: a blank line is skipped (false); a JSON array of `width` numbers that float32 holds
 * is written into `into` from `offset` (true); anything else is handed to `fail`, in the words
 * both readers answer with, which places it (`line 7`, `data.ndjson: line 7`).
 */
export function readNdjsonRow(
  text: string,
  width: number,
  into: Float32Array | number[],
  offset: number,
  fail: (problem: NdjsonRowProblem) => never,
): boolean {
  const trimmed = text.trim();
  if (trimmed === '') return false;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return fail({ message: 'not valid JSON' });
  }
  if (!Array.isArray(value) || value.length !== width) {
    return fail({
      message: Array.isArray(value)
        ? rowWidthMessage(width, value.length)
        : `expected an array of ${width} numbers`,
    });
  }
  for (let c = 0; c < width; c++) {
    const v: unknown = value[c];
    if (typeof v !== 'number' || !roundsToFiniteFloat32(v)) {
      return fail({
        column: c,
        message: typeof v === 'number' ? FLOAT32_RANGE_MESSAGE : notANumberMessage(v),
      });
    }
    into[offset + c] = v;
  }
  return true;
}
