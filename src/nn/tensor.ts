/**
 * The largest finite float32, 3.4028234663852886e38 (2^128 − 2^104): tensors store float32, so a
 * larger input value would become Infinity.
 */
export const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The largest double that rounds to a finite float32 (round to nearest, ties to even, as
 * Math.fround and PyTorch's float32 conversion do): 2^128 − 2^103 lies halfway between FLOAT32_MAX
 * and 2^128 and rounds to the even one, Infinity, so the limit is the double below it,
 * 2^128 − 2^103 − 2^75 = 3.4028235677973362e38. Numbers printed as `3.4028235e38` (numpy's, Java's
 * and Rust's shortest form of FLOAT32_MAX) are within it.
 */
export const FLOAT32_ROUNDING_MAX = 2 ** 128 - 2 ** 103 - 2 ** 75;

/** Whether `x` is a number that stays finite as float32 (false for NaN and ±Infinity). */
export const roundsToFiniteFloat32 = (x: number): boolean => Math.abs(x) <= FLOAT32_ROUNDING_MAX;

/** Why a value that does not round to a finite float32 is refused, in every reader's words. */
export const FLOAT32_RANGE_MESSAGE = `outside the float32 range (it would round to ±Infinity; the largest float32 is ${FLOAT32_MAX})`;

/** Number of elements of a shape; `[]` is a scalar with one element. */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * A dense row-major float32 tensor. Storage is always a Float32Array (PyTorch's default dtype);
 * reductions over it accumulate in float64 (JavaScript numbers).
 */
export class Tensor {
  readonly data: Float32Array;
  readonly shape: readonly number[];

  constructor(data: Float32Array, shape: readonly number[]) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new RangeError(`invalid tensor shape [${shape}]`);
    }
    if (data.length !== numelOf(shape)) {
      throw new RangeError(
        `tensor data has ${data.length} elements, shape [${shape}] needs ${numelOf(shape)}`,
      );
    }
    this.data = data;
    this.shape = [...shape];
  }

  static zeros(shape: readonly number[]): Tensor {
    return new Tensor(new Float32Array(numelOf(shape)), shape);
  }

  static filled(shape: readonly number[], value: number): Tensor {
    return new Tensor(new Float32Array(numelOf(shape)).fill(value), shape);
  }

  static from(values: ArrayLike<number>, shape: readonly number[]): Tensor {
    return new Tensor(Float32Array.from(values), shape);
  }

  /** A [rows, columns] matrix from an array of equal-length rows. */
  static fromRows(rows: readonly (readonly number[])[]): Tensor {
    const cols = rows.length === 0 ? 0 : rows[0]!.length;
    const data = new Float32Array(rows.length * cols);
    rows.forEach((row, r) => {
      if (row.length !== cols)
        throw new RangeError(`row ${r} has ${row.length} values, expected ${cols}`);
      data.set(row, r * cols);
    });
    return new Tensor(data, [rows.length, cols]);
  }

  get numel(): number {
    return this.data.length;
  }

  /** Size of the first dimension (the batch). */
  get rows(): number {
    return this.shape[0] ?? 1;
  }

  /** Elements per row: the product of all dimensions after the first. */
  get rowSize(): number {
    return this.shape.length === 0 ? 1 : this.data.length / (this.shape[0] || 1);
  }

  clone(): Tensor {
    return new Tensor(this.data.slice(), this.shape);
  }

  reshape(shape: readonly number[]): Tensor {
    return new Tensor(this.data, shape);
  }

  /** Rows [start, end) of the first dimension, sharing storage. */
  sliceRows(start: number, end: number): Tensor {
    const size = this.rowSize;
    return new Tensor(this.data.subarray(start * size, end * size), [
      end - start,
      ...this.shape.slice(1),
    ]);
  }

  toRows(): number[][] {
    const size = this.rowSize;
    const out: number[][] = [];
    for (let r = 0; r < this.rows; r++)
      out.push(Array.from(this.data.subarray(r * size, (r + 1) * size)));
    return out;
  }
}
