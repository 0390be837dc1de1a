import type { EngineName } from '../inference/engine-name.js';
import { CompiledModel } from '../inference/index.js';
import { finishYielding } from '../nn/index.js';
import { loadModelDirectory } from '../repository/index.js';
import { nodeEngineOptions } from './engine-runtime.js';
import { checkFiniteOutputs, overflowRows } from './predict.js';
import { DEFAULT_MAX_BATCH_SIZE } from './server-config.js';
import { checkFinite } from './tensor-codec.js';

export interface LoadModelOptions {
  /** wasm (default; js where the runtime or the model cannot) or js, the reference. */
  engine?: EngineName;
  /** Threads one large batch may use, the calling one included (default 1). */
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
  /** The engine that runs it (wasm, or js after a fallback: convolutional models for now). */
  readonly engine: EngineName;
  /**
   * Outputs [rows, outputWidth] — logits for classification — for `rows` rows of raw features
   * ([rows, inputWidth], row-major; the model's input transform is applied). Synchronous. A row
   * whose outputs are not finite is refused as the server refuses it: a NormserveError with
   * `code` INVALID_INPUT naming `input[i]` (a value that is NaN or ±Infinity) or else
   * `input (row r)` (values so large that the outputs overflow float32).
   */
  run(input: Float32Array, rows: number): Float32Array;
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
  const { name, version, checkpoint } = await loadModelDirectory(dir);
  const { config } = checkpoint;
  // Read, checked and compiled in slices, the event loop given back between them: a process
  // that loads a large model goes on serving meanwhile (the server's registry loads the same way).
  const compiled = await finishYielding(
    CompiledModel.building(
      checkpoint.network,
      config.input_transform,
      options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE,
      config.input_shape,
      nodeEngineOptions({ engine: options.engine ?? 'wasm', threads: options.threads ?? 1 }),
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
    run: (input, rows) => {
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
