import { describeLocations, type ErrorLocation, NormserveError } from '../errors/index.js';
import { numelOf } from '../nn/index.js';

/** The largest float32, 3.4028234663852886e38: the engine stores every input value as float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;
export const FLOAT32_RANGE_MESSAGE = `outside the float32 range (|x| ≤ ${FLOAT32_MAX})`;
export const FINITE_NUMBER_MESSAGE = 'expected a finite number';
export const ROW_ARRAY_MESSAGE = 'expected an array of numbers (one row)';

/** Errors reported per request: enough to fix a body, bounded for a body full of mistakes. */
const MAX_ERRORS = 10;

const dims = (shape: readonly number[]): string => shape.map((d) => `[${d}]`).join('');

/**
 * How a model takes its input, for the prediction APIs: one sample is `shape` ([F] or
 * [C, H, W]), sent either flat (numel numbers, row-major as PyTorch stores it) or nested exactly
 * as the shape ([1][8][8]). Every value must be a finite number within the float32 range.
 * Validation errors name each offending place (`instances[3][17]`, `instances[0][0][3][9]`,
 * `inputs[0].data[5]`), at most ten per request.
 */
export class InputShape {
  readonly shape: readonly number[];
  /** Values per sample. */
  readonly width: number;

  constructor(shape: readonly number[]) {
    this.shape = [...shape];
    this.width = numelOf(shape);
  }

  /** What one sample may look like, for messages: `64 numbers or a nested [1][8][8] array`. */
  describe(): string {
    return this.shape.length === 1
      ? `${this.width} numbers`
      : `${this.width} numbers or a nested ${dims(this.shape)} array`;
  }

  /**
   * Instances (TF Serving's `instances` or columnar `inputs`: one sample per element) as a
   * float32 [rows, width] matrix; INVALID_INPUT naming every offending place otherwise.
   */
  readInstances(instances: readonly unknown[], field: string): Float32Array {
    const out = new Float32Array(instances.length * this.width);
    const errors: ErrorLocation[] = [];
    for (let r = 0; r < instances.length && errors.length < MAX_ERRORS; r++)
      this.readSample(instances[r], `${field}[${r}]`, out, r * this.width, errors);
    throwIfAny(errors);
    return out;
  }

  /**
   * One sample at `path` into out[offset…]: flat (width values, none an array) or nested by the
   * shape. A one-dimensional shape is flat and nested at once, so its messages stay the plain
   * ones (`expected 64 values, got 63`).
   */
  readSample(
    value: unknown,
    path: string,
    out: Float32Array,
    offset: number,
    errors: ErrorLocation[],
  ): void {
    if (!Array.isArray(value)) {
      errors.push({
        path,
        message: this.shape.length === 1 ? ROW_ARRAY_MESSAGE : `expected ${this.describe()}`,
      });
      return;
    }
    const nested = this.shape.length > 1 && value.some(Array.isArray);
    if (nested) {
      this.readNested(value, 0, path, out, offset, errors);
      return;
    }
    if (value.length !== this.width) {
      errors.push({
        path,
        message:
          this.shape.length === 1
            ? `expected ${this.width} values, got ${value.length}`
            : `expected ${this.describe()}, got ${value.length} values`,
      });
      return;
    }
    for (let i = 0; i < value.length && errors.length < MAX_ERRORS; i++)
      readNumber(value[i], `${path}[${i}]`, out, offset + i, errors);
  }

  /** The nested form, dimension `depth` of the shape at `path`. */
  private readNested(
    value: unknown[],
    depth: number,
    path: string,
    out: Float32Array,
    offset: number,
    errors: ErrorLocation[],
  ): void {
    const size = this.shape[depth]!;
    if (value.length !== size) {
      errors.push({
        path,
        message: `expected ${size} value${size === 1 ? '' : 's'} (dimension ${depth} of ${dims(this.shape)}), got ${value.length}`,
      });
      return;
    }
    const last = depth === this.shape.length - 1;
    const stride = numelOf(this.shape.slice(depth + 1));
    for (let i = 0; i < size && errors.length < MAX_ERRORS; i++) {
      const item = value[i];
      const at = `${path}[${i}]`;
      if (last) {
        readNumber(item, at, out, offset + i, errors);
      } else if (Array.isArray(item)) {
        this.readNested(item, depth + 1, at, out, offset + i * stride, errors);
      } else {
        const next = this.shape[depth + 1]!;
        errors.push({
          path: at,
          message: `expected an array of ${next} value${next === 1 ? '' : 's'}`,
        });
      }
    }
  }

  /**
   * The batch size of a tensor shape given for these samples: [N, ...shape] or [N, width]
   * (TF Serving's columnar and the Open Inference Protocol's input tensors).
   */
  batchOf(tensorShape: readonly number[], path: string): number {
    const flat = tensorShape.length === 2 && tensorShape[1] === this.width;
    const full =
      tensorShape.length === this.shape.length + 1 &&
      this.shape.every((d, i) => tensorShape[i + 1] === d);
    if (!flat && !full) {
      const expected =
        this.shape.length === 1
          ? `[N, ${this.width}]`
          : `[N, ${this.shape.join(', ')}] or [N, ${this.width}]`;
      fail(path, `expected ${expected}, got [${tensorShape.join(', ')}]`);
    }
    return tensorShape[0]!;
  }

  /**
   * The data of a tensor of shape [rows, …] (as checked by batchOf): flat, rows·width numbers in
   * row-major order, or nested by rows, each row a sample in either form.
   */
  readTensorData(
    values: readonly unknown[],
    tensorShape: readonly number[],
    path: string,
  ): Float32Array {
    const rows = tensorShape[0]!;
    const out = new Float32Array(rows * this.width);
    const errors: ErrorLocation[] = [];
    if (values.length === rows * this.width && !values.some(Array.isArray)) {
      for (let i = 0; i < values.length && errors.length < MAX_ERRORS; i++)
        readNumber(values[i], `${path}[${i}]`, out, i, errors);
    } else if (values.length === rows && values.every(Array.isArray)) {
      for (let r = 0; r < rows && errors.length < MAX_ERRORS; r++)
        this.readSample(values[r], `${path}[${r}]`, out, r * this.width, errors);
    } else {
      const row = this.shape.length === 1 ? this.width : this.describe();
      fail(
        path,
        `expected ${rows * this.width} numbers (flat) or ${rows} rows of ${row} for shape [${tensorShape.join(', ')}]`,
      );
    }
    throwIfAny(errors);
    return out;
  }
}

function readNumber(
  v: unknown,
  path: string,
  out: Float32Array,
  at: number,
  errors: ErrorLocation[],
): void {
  if (typeof v !== 'number' || !Number.isFinite(v))
    errors.push({ path, message: FINITE_NUMBER_MESSAGE });
  else if (Math.abs(v) > FLOAT32_MAX) errors.push({ path, message: FLOAT32_RANGE_MESSAGE });
  else out[at] = v;
}

function fail(path: string, message: string): never {
  throw new NormserveError('INVALID_INPUT', `${path}: ${message}`, { errors: [{ path, message }] });
}

function throwIfAny(errors: ErrorLocation[]): void {
  if (errors.length > 0) {
    throw new NormserveError('INVALID_INPUT', describeLocations(errors, 3), { errors });
  }
}
