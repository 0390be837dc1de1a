/** Where rows are written: the engine's float32 input matrix. */
export type InputBuffer = Float32Array;

/**
 * Validated input rows of one request, not yet copied anywhere: the engine's input matrix is
 * filled straight from them (at an offset when several requests run as one batch), so no
 * intermediate matrix is built. Every value is already known to be finite and within float32.
 */
export interface RowSource {
  readonly rows: number;
  readonly width: number;
  /** The rows as a float32 [rows, width] matrix already (binary bodies): used as is. */
  readonly matrix?: Float32Array;
  /** Writes the rows, rounded to float32, at `buffer[offset …]` (row-major). */
  copyTo(buffer: InputBuffer, offset: number): void;
}

/** Rows of numbers (an [F] input's `instances` or nested OIP data), each of length `width`. */
export function nestedRows(rows: readonly (readonly number[])[], width: number): RowSource {
  return {
    rows: rows.length,
    width,
    copyTo(buffer, offset) {
      let o = offset;
      for (let r = 0; r < rows.length; r++) {
        const row = rows[r]!;
        for (let c = 0; c < width; c++) buffer[o++] = row[c]!;
      }
    },
  };
}

/**
 * Samples of a multi-dimensional input shape ([C, H, W]), each either `width` numbers or arrays
 * nested exactly as the shape ([1][8][8]): written depth-first, which is the row-major order the
 * engine takes.
 */
export function sampleRows(samples: readonly (readonly unknown[])[], width: number): RowSource {
  return {
    rows: samples.length,
    width,
    copyTo(buffer, offset) {
      let o = offset;
      for (let r = 0; r < samples.length; r++) o = writeDepthFirst(samples[r]!, buffer, o);
    },
  };
}

function writeDepthFirst(values: readonly unknown[], buffer: InputBuffer, offset: number): number {
  let o = offset;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Array.isArray(v)) o = writeDepthFirst(v, buffer, o);
    else buffer[o++] = v as number;
  }
  return o;
}

/** Row-major numbers (flat OIP data, gRPC fp32_contents), `rows × width` of them. */
export function flatRows(values: readonly number[], rows: number, width: number): RowSource {
  return {
    rows,
    width,
    copyTo(buffer, offset) {
      const n = rows * width;
      for (let i = 0; i < n; i++) buffer[offset + i] = values[i]!;
    },
  };
}

/** A float32 tensor (binary bodies, gRPC raw contents), already checked to be finite. */
export function float32Rows(values: Float32Array, rows: number, width: number): RowSource {
  return {
    rows,
    width,
    matrix: values.subarray(0, rows * width),
    copyTo(buffer, offset) {
      buffer.set(values.subarray(0, rows * width), offset);
    },
  };
}
