import { z } from 'zod';

/**
 * What one request may ask for, in one place. Each limit bounds the work a request causes and the
 * size of its answer by the request's rows times the model's outputs (test/http/resources.test.ts);
 * the row limits themselves are the configuration's (MAX_BATCH_SIZE, MAX_RECALIBRATION_SAMPLES).
 */
export const LIMITS = {
  /** Places named in a problem's `errors`; the detail counts the rest. */
  errorLocations: 10,
  /** Characters of a client's string quoted back in a message (the rest is cut, marked "…"). */
  echoChars: 64,
  /** An Open Inference Protocol request id (echoed in the response). */
  idChars: 256,
  /** Tensor names, datatypes and signature names. */
  nameChars: 128,
  /** Tensors in an infer request's `inputs` or `outputs` (a model has one input, ≤ 3 outputs). */
  tensors: 16,
  /** Dimensions of a tensor shape. */
  shapeDims: 8,
  /** Keys of an Open Inference Protocol `parameters` object (read by nobody, kept small). */
  parameterKeys: 64,
  /** A free-text note recorded in a version's provenance. */
  noteChars: 1000,
} as const;

/** `value` quoted for a message, cut to LIMITS.echoChars characters. */
export function quote(value: string): string {
  const cut = value.length > LIMITS.echoChars ? `${value.slice(0, LIMITS.echoChars)}…` : value;
  return JSON.stringify(cut);
}

/** An Open Inference Protocol `parameters` object: any values, at most LIMITS.parameterKeys keys. */
export const parametersSchema = z
  .record(z.string(), z.unknown())
  .refine((p) => Object.keys(p).length <= LIMITS.parameterKeys, {
    message: `at most ${LIMITS.parameterKeys} parameters`,
  });
