import { z } from 'zod';
import {
  describeInput,
  describeLocations,
  issuesToLocations,
  NormserveError,
  rangeMessage,
  safeParseWorded,
} from '../errors/index.js';
import type { EngineName } from '../inference/engine-name.js';
import { CompiledModel } from '../inference/index.js';
import { finishYielding } from '../nn/index.js';
import { loadModelDirectory } from '../repository/index.js';
import { nodeEngineOptions } from './engine-runtime.js';
import { checkFiniteOutputs, overflowRows } from './predict.js';
import { serverConfigSchema } from './server-config.js';
import { checkFinite } from './tensor-codec.js';

/**
 * The options, by the server's own rules for ENGINE, ENGINE_THREADS and MAX_BATCH_SIZE (one rule,
 * one place: the same values, ranges and messages); an unknown option is refused, so a misspelt
 * one (`thread`) is not silently ignored. Threads default to 1 here (the server's default is its
 * cores).
 */
const loadModelOptionsSchema = z.strictObject({
  engine: serverConfigSchema.shape.ENGINE,
  threads: serverConfigSchema.shape.ENGINE_THREADS,
  maxBatchSize: serverConfigSchema.shape.MAX_BATCH_SIZE,
});

function parseLoadModelOptions(options: unknown) {
  const parsed = safeParseWorded(loadModelOptionsSchema, options ?? {});
  if (!parsed.success) {
    const errors = issuesToLocations(parsed.error.issues);
    throw new NormserveError('INVALID_INPUT', `loadModel options: ${describeLocations(errors)}`, {
      errors,
    });
  }
  return parsed.data;
}

/** A NormserveError INVALID_INPUT about `path`. */
const invalidInput = (path: string, message: string) =>
  new NormserveError('INVALID_INPUT', `${path}: ${message}`, { errors: [{ path, message }] });

/**
 * `run`'s input as the executor takes it: a Float32Array as it is, or an array of numbers copied
 * once into one (an element that is no number is named, as `input[i]`), `rows` × `width` values.
 */
function runInput(input: unknown, rows: unknown, width: number): Float32Array {
  if (typeof rows !== 'number' || !Number.isSafeInteger(rows) || rows < 1)
    throw invalidInput('rows', rangeMessage({ integer: true, min: 1 }, rows));
  let values: Float32Array;
  if (input instanceof Float32Array) values = input;
  else if (Array.isArray(input)) {
    for (let i = 0; i < input.length; i++)
      if (typeof input[i] !== 'number')
        throw invalidInput(`input[${i}]`, `expected a number, got ${describeInput(input[i])}`);
    values = Float32Array.from(input as number[]);
  } else
    throw invalidInput(
      'input',
      `expected a Float32Array or an array of numbers, got ${
        ArrayBuffer.isView(input) ? `a ${input.constructor.name}` : describeInput(input)
      }`,
    );
  if (values.length !== rows * width)
    throw invalidInput(
      'input',
      `expected ${rows * width} values (${rows} × ${width} per row), got ${values.length}`,
    );
  return values;
}

export interface LoadModelOptions {
  /** wasm (default) or js, the reference. */
  engine?: EngineName;
  /** Threads one large batch may use, the calling one included: 1 (default) to 64. */
  threads?: number;
  /**
   * Rows per call the buffers are sized for (default DEFAULT_MAX_BATCH_SIZE, as a server's; larger
   * calls still work).
   */
  maxBatchSize?: number;
}

/** A loaded model version, like onnxruntime's InferenceSession. */
export interface LoadedModel {
  readonly name: string;
  readonly version: number;
  readonly task: 'classification' | 'regression';
  /** Shape of one input sample, e.g. [64] or [1, 8, 8]; `run` takes samples flat, row-major. */
  readonly inputShape: readonly number[];
  readonly outputWidth: number;
  /** Class labels in output order (classification). */
  readonly labels: readonly string[] | undefined;
  /**
   * The engine that runs it: the one asked for (every layer, convolutions included, has a wasm
   * kernel), or js where the runtime lacks WebAssembly SIMD.
   */
  readonly engine: EngineName;
  /**
   * Outputs [rows, outputWidth] — logits for classification — for `rows` rows of raw features
   * ([rows, inputWidth], row-major; the model's input transform is applied): a Float32Array of
   * exactly rows × inputWidth values, or an array of numbers (copied into one per call).
   * Synchronous. Input of another type or length, or `rows` not an integer ≥ 1: a NormserveError
   * with `code` INVALID_INPUT naming `input`, `input[i]` or `rows`. A row
   * whose outputs are not finite is refused as the server refuses it: a NormserveError with
   * `code` INVALID_INPUT naming `input[i]` (a value that is NaN or ±Infinity) or else
   * `input (row r)` (values so large that the outputs overflow float32).
   */
  run(input: Float32Array | readonly number[], rows: number): Float32Array;
  /** Stops the model's helper threads (run keeps working, on the calling thread). */
  close(): void;
}

/**
 * Loads a model directory — `<repository>/<model>` (its active version) or a version directory —
 * compiled for eval (BatchNorm folded) on the chosen engine. With `threads` > 1, the helper threads
 * start with the first batch big enough to split (that batch runs on the calling thread) and are
 * used once ready: loading does not wait for them.
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  // Called from JavaScript too, where nothing checks the argument (review60: Node's raw
  // ERR_INVALID_ARG_TYPE for loadModel()).
  if (typeof dir !== 'string' || dir === '')
    throw new NormserveError(
      'INVALID_INPUT',
      `loadModel(dir): dir is a model directory's path (<repository>/<model> or a version directory), got ${dir === '' ? '""' : typeof dir}`,
    );
  const { engine, threads, maxBatchSize } = parseLoadModelOptions(options);
  const { name, version, checkpoint } = await loadModelDirectory(dir);
  const { config } = checkpoint;
  // Read, checked and compiled in slices, the event loop given back between them: a process
  // that loads a large model goes on serving meanwhile (the server's registry loads the same way).
  const compiled = await finishYielding(
    CompiledModel.building(
      checkpoint.network,
      config.input_transform,
      maxBatchSize,
      config.input_shape,
      nodeEngineOptions({ engine, threads: threads ?? 1 }),
    ),
  );
  const executor = compiled.executor;
  return {
    name,
    version,
    task: config.task,
    inputShape: [...config.input_shape],
    outputWidth: compiled.outputWidth,
    labels: config.labels ? [...config.labels] : undefined,
    engine: executor.engine,
    run: (given, rows) => {
      const input = runInput(given, rows, compiled.inputWidth);
      const outputs = executor.run(input, rows);
      const overflow = overflowRows(outputs, 0, rows, compiled.outputWidth);
      if (overflow.length > 0) {
        // Rare: only then are the inputs read again, to name a value that was never finite.
        checkFinite(input.subarray(0, rows * compiled.inputWidth), 'input');
        checkFiniteOutputs({ overflowRows: overflow }, (r) => `input (row ${r})`);
      }
      return outputs;
    },
    close: () => executor.close(),
  };
}
