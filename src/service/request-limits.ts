/**
 * What one request may ask for, over HTTP and gRPC alike, in one place. Each limit bounds the
 * work a request causes and the size of its answer by the request's rows times the model's
 * outputs (test/http/resources.test.ts); the row limits themselves are the configuration's
 * (MAX_BATCH_SIZE, MAX_RECALIBRATION_SAMPLES).
 */
export const LIMITS = {
  /** Places named in a problem's `errors`; the detail counts the rest. */
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
