import { z } from 'zod';
import {
  counted,
  describeInput,
  describeLocations,
  type ErrorLocation,
  NormserveError,
} from '../errors/index.js';
import {
  FLOAT32_MAX,
  FLOAT32_RANGE_MESSAGE,
  FLOAT32_ROUNDING_MAX,
  numelOf,
  roundsToFiniteFloat32,
} from '../nn/index.js';
import { compileAccepts } from './compiled-schema.js';
import { LIMITS } from './request-limits.js';
import { flatRows, nestedRows, type RowSource, sampleRows } from './row-source.js';

export { FLOAT32_MAX, FLOAT32_RANGE_MESSAGE, roundsToFiniteFloat32 };
export const FINITE_NUMBER_MESSAGE = 'expected a finite number';
/** `expected a finite number, got "1"`: what was sent in place of a number, as zod names it. */
export const notANumberMessage = (input: unknown): string =>
  `${FINITE_NUMBER_MESSAGE}, got ${describeInput(input)}`;
export const ROW_ARRAY_MESSAGE = 'expected an array of numbers (one row)';

/**
 * A flat row of the wrong width, `expected 64 values, got 63`: one wording for JSON instances
 * (InputShape) and NDJSON upload lines (http/upload-readers.ts).
 */
export const rowWidthMessage = (width: number, got: number): string =>
  `expected ${width} value${width === 1 ? '' : 's'}, got ${got}`;

/**
 * The rule for every input value sent as JSON: a finite number that stays finite as float32
 * (`roundsToFiniteFloat32`: 3.4028235e38, the largest float32 as numpy prints it, is taken). NaN
 * and Infinity cannot be written in JSON (1e999 parses to Infinity and is refused); strings, null
 * and booleans are refused, and so is 1e39, which would become Infinity as float32 and turn every
 * output into NaN. The request schemas use it as it is; the readers below use the predicate
 * compiled from it and its messages, so the rule is written once.
 */
export const float32Value = z
  .number({ error: (issue) => notANumberMessage(issue.input) })
  .min(-FLOAT32_ROUNDING_MAX, FLOAT32_RANGE_MESSAGE)
  .max(FLOAT32_ROUNDING_MAX, FLOAT32_RANGE_MESSAGE);

const isFloat32Value = compileAccepts(float32Value)!;

/** Why a value is not a float32 input value (zod's message for it). */
const valueProblem = (v: unknown): string =>
  float32Value.safeParse(v).error?.issues[0]?.message ?? notANumberMessage(v);

const dims = (shape: readonly number[]): string => shape.map((d) => `[${d}]`).join('');

/**
 * How a model takes its input, for the prediction APIs: one sample is `shape` ([F] or
 * [C, H, W]), sent either flat (numel numbers, row-major as PyTorch stores it) or nested exactly
 * as the shape ([1][8][8]). Every value must be a finite number within the float32 range
 * (`float32Value`). Two forms of the same rule: `sampleSchema()` for the compiled checks of the
 * fast path, and the readers, which name each offending place (`instances[3][17]`,
 * `instances[0][0][3][9]`, `inputs[0].data[5]`), at most ten per request.
 */
export class InputShape {
  readonly shape: readonly number[];
  /** Values per sample. */
  readonly width: number;
  /**
   * The most JSON arrays one sample is written with: 1 flat; nested, one per index prefix of the
   * shape but the full one, 1 + C + C·H for [C, H, W] (10 for [1, 8, 8]). What a body of such
   * samples may hold (http/json-budget.ts).
   */
  readonly arraysPerSample: number;

  constructor(shape: readonly number[]) {
    this.shape = [...shape];
    this.width = numelOf(shape);
    let arrays = 1;
    let prefix = 1;
    for (let d = 0; d < shape.length - 1; d++) {
      prefix *= shape[d]!;
      arrays += prefix;
    }
    this.arraysPerSample = arrays;
  }

  /** What one sample may look like, for messages: `64 numbers or a nested [1][8][8] array`. */
  describe(): string {
    return this.shape.length === 1
      ? `${this.width} numbers`
      : `${this.width} numbers or a nested ${dims(this.shape)} array`;
  }

  /**
   * One sample as a zod schema: `width` values flat, or (for a multi-dimensional shape) arrays
   * nested exactly as the shape. It accepts what the readers accept; compiled per model, it is
   * the fast path's check (the readers name the errors of what it refuses).
   */
  sampleSchema(): z.ZodType {
    const flat = z
      .array(float32Value, { error: ROW_ARRAY_MESSAGE })
      .length(this.width, `expected ${this.width} values`);
    if (this.shape.length === 1) return flat;
    let nested: z.ZodType = float32Value;
    for (let d = this.shape.length - 1; d >= 0; d--)
      nested = z.array(nested).length(this.shape[d]!);
    return z.union([flat, nested]);
  }

  /**
   * Samples already known to be valid (accepted by a check compiled from `sampleSchema()`), as
   * rows for the engine; nothing is checked or copied until the engine's input matrix is filled.
   */
  samples(values: readonly unknown[]): RowSource {
    return this.shape.length === 1
      ? nestedRows(values as readonly (readonly number[])[], this.width)
      : sampleRows(values as readonly (readonly unknown[])[], this.width);
  }

  /**
   * Instances (TF Serving's `instances` or columnar `inputs`: one sample per element) checked as
   * rows for the engine; INVALID_INPUT naming every offending place otherwise (row r at
   * `field[r]`, or where `field(r)` says).
   */
  instances(instances: readonly unknown[], field: string | ((row: number) => string)): RowSource {
    // A function names the rows of TF Serving's named forms (`instances[3].input`).
    const at = typeof field === 'string' ? (r: number) => `${field}[${r}]` : field;
    const errors: ErrorLocation[] = [];
    for (let r = 0; r < instances.length && errors.length < LIMITS.errorLocations; r++)
      this.checkSample(instances[r], at(r), errors);
    throwIfAny(errors);
    return this.samples(instances);
  }

  /** `instances` as a float32 [rows, width] matrix. */
  readInstances(instances: readonly unknown[], field: string): Float32Array {
    return matrixOf(this.instances(instances, field));
  }

  /**
   * One sample at `path`: flat (width values, none an array) or nested by the shape. A
   * one-dimensional shape is flat and nested at once, so its messages stay the plain ones
   * (`expected 64 values, got 63`).
   */
  private checkSample(value: unknown, path: string, errors: ErrorLocation[]): void {
    if (!Array.isArray(value)) {
      errors.push({
        path,
        message: this.shape.length === 1 ? ROW_ARRAY_MESSAGE : `expected ${this.describe()}`,
      });
      return;
    }
    if (this.shape.length > 1 && value.some(Array.isArray)) {
      this.checkNested(value, 0, path, errors);
      return;
    }
    if (value.length !== this.width) {
      errors.push({
        path,
        message:
          this.shape.length === 1
            ? rowWidthMessage(this.width, value.length)
            : `expected ${this.describe()}, got ${value.length} values`,
      });
      return;
    }
    checkValues(value, path, errors);
  }

  /** The nested form, dimension `depth` of the shape at `path`. */
  private checkNested(value: unknown[], depth: number, path: string, errors: ErrorLocation[]) {
    const size = this.shape[depth]!;
    if (value.length !== size) {
      errors.push({
        path,
        message: `expected ${size} value${size === 1 ? '' : 's'} (dimension ${depth} of ${dims(this.shape)}), got ${value.length}`,
      });
      return;
    }
    if (depth === this.shape.length - 1) {
      checkValues(value, path, errors);
      return;
    }
    for (let i = 0; i < size && errors.length < LIMITS.errorLocations; i++) {
      const item = value[i];
      const at = `${path}[${i}]`;
      if (Array.isArray(item)) {
        this.checkNested(item, depth + 1, at, errors);
      } else {
        const next = this.shape[depth + 1]!;
        errors.push({
          path: at,
          message: `expected an array of ${next} value${next === 1 ? '' : 's'}`,
        });
      }
    }
  }

  /** The tensor shapes a batch of these samples may be given in: [N, ...shape] or [N, width]. */
  describeTensor(): string {
    return this.shape.length === 1
      ? `[N, ${this.width}]`
      : `[N, ${this.shape.join(', ')}] or [N, ${this.width}]`;
  }

  /**
   * The batch size of a tensor shape given for these samples: [N, ...shape] or [N, width]
   * (TF Serving's columnar and the Open Inference Protocol's input tensors, JSON, binary or gRPC).
   */
  batchOf(tensorShape: readonly number[], path: string): number {
    const flat = tensorShape.length === 2 && tensorShape[1] === this.width;
    const full =
      tensorShape.length === this.shape.length + 1 &&
      this.shape.every((d, i) => tensorShape[i + 1] === d);
    if (!flat && !full)
      failInput(path, `expected ${this.describeTensor()}, got [${tensorShape.join(', ')}]`);
    return tensorShape[0]!;
  }

  /**
   * The JSON data of a tensor of shape [rows, …] (as checked by batchOf), checked as rows for
   * the engine: flat, rows·width numbers in row-major order, or nested by rows, each row a sample
   * in either form.
   */
  tensorData(values: readonly unknown[], tensorShape: readonly number[], path: string): RowSource {
    const rows = tensorShape[0]!;
    const errors: ErrorLocation[] = [];
    if (values.length === rows * this.width && !values.some(Array.isArray)) {
      checkValues(values, path, errors);
      throwIfAny(errors);
      return flatRows(values as readonly number[], rows, this.width);
    }
    if (values.length === rows && values.every(Array.isArray)) {
      for (let r = 0; r < rows && errors.length < LIMITS.errorLocations; r++)
        this.checkSample(values[r], `${path}[${r}]`, errors);
      throwIfAny(errors);
      return this.samples(values);
    }
    const row = this.shape.length === 1 ? this.width : this.describe();
    const arrays = values.filter(Array.isArray).length;
    const got =
      arrays === values.length
        ? counted(arrays, 'row')
        : values.every((v) => typeof v === 'number')
          ? counted(values.length, 'number')
          : `${counted(values.length, 'value')}${arrays > 0 ? `, ${arrays} of them ${arrays === 1 ? 'an array' : 'arrays'}` : ''}`;
    return failInput(
      path,
      `expected ${counted(rows * this.width, 'number')} (flat) or ${counted(rows, 'row')} of ${row} for shape [${tensorShape.join(', ')}], got ${got}`,
    );
  }

  /** `tensorData` as a float32 [rows, width] matrix. */
  readTensorData(
    values: readonly unknown[],
    tensorShape: readonly number[],
    path: string,
  ): Float32Array {
    return matrixOf(this.tensorData(values, tensorShape, path));
  }
}

/** Each of `values` must be a float32 input value; the offending ones are named `path[i]`. */
function checkValues(values: readonly unknown[], path: string, errors: ErrorLocation[]): void {
  for (let i = 0; i < values.length && errors.length < LIMITS.errorLocations; i++) {
    const v = values[i];
    if (!isFloat32Value(v)) errors.push({ path: `${path}[${i}]`, message: valueProblem(v) });
  }
}

function matrixOf(source: RowSource): Float32Array {
  const out = new Float32Array(source.rows * source.width);
  source.copyTo(out, 0);
  return out;
}

/** An INVALID_INPUT error naming one place. */
export function failInput(path: string, message: string): never {
  throw new NormserveError('INVALID_INPUT', `${path}: ${message}`, { errors: [{ path, message }] });
}

function throwIfAny(errors: ErrorLocation[]): void {
  if (errors.length > 0) {
    // The checks stop at LIMITS.errorLocations places: past it, "… and 7 more" would read as a
    // count of all.
    const stopped =
      errors.length >= LIMITS.errorLocations
        ? `; the check stopped at ${LIMITS.errorLocations} places`
        : '';
    throw new NormserveError('INVALID_INPUT', `${describeLocations(errors, 3)}${stopped}`, {
      errors,
    });
  }
}
