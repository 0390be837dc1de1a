import type { FastifyReply, FastifyRequest } from 'fastify';
import { checkFiniteOutputs, type PredictOutput } from '../service/index.js';
import { setModelVersion } from './model-version-header.js';
import { recordInference } from './request-context.js';

/**
 * What the prediction routes (TF Serving predict, OIP infer) do with the engine's answer before
 * shaping their reply: refuse rows whose outputs overflow (`rowPath` names each one in the
 * request), record the inference for the log line and metrics, and name the version that answered.
 */
export function answered(
  request: FastifyRequest,
  reply: FastifyReply,
  out: PredictOutput,
  fused: boolean,
  rowPath: (row: number) => string,
): void {
  checkFiniteOutputs(out, rowPath);
  recordInference(request, out, fused);
  setModelVersion(reply, out.version);
}
