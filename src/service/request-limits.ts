import { z } from 'zod';

/**
 * What one request may ask for, over HTTP and gRPC alike, in one place. Each limit bounds the
 * work a request causes and the size of its answer by the request's rows times the model's
 * outputs (test/http/resources.test.ts); the row limits themselves are the configuration's
 * (MAX_BATCH_SIZE, MAX_RECALIBRATION_SAMPLES).
 */
export const LIMITS = {
  /**
   * Places named in a problem's `errors`; the detail counts the rest. The input checks
   * (input-shape.ts, tensor-codec.ts) stop looking at this many.
   */
  errorLocations: 10,
  /** An Open Inference Protocol request id (echoed in the response). */
  idChars: 256,
  /** Tensor names, datatypes and signature names. */
  nameChars: 128,
  /** Tensors in an infer request's `inputs` or `outputs` (a model has one input, ≤ 3 outputs). */
  tensors: 16,
  /** Dimensions of a tensor shape. */
  shapeDims: 8,
  /** A free-text note recorded in a version's provenance. */
  noteChars: 1000,
} as const;

/**
 * A version's note, over HTTP and from the recalibrate CLI alike: zod counts its characters
 * (code points: 1,000 emoji are a note), where the CLI counted UTF-16 units and refused a note of
 * 600 emoji that HTTP took (the recalibration attacker of 2026-12-04).
 */
export const noteSchema = z.string().max(LIMITS.noteChars);
