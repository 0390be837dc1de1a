/**
 * One answered inference request as the metrics observe it, whatever its transport (HTTP JSON,
 * HTTP binary, gRPC ModelInfer): `normserve_inference_duration_seconds` (the engine's compute
 * time, forward pass and softmax, by model, version and fused) and `normserve_batch_size` (its
 * rows, by model). Observed once the request is answered, never for one refused before or after
 * its compute (outputs that overflow) nor for one whose client went.
 */
export interface InferenceObservation {
  model: string;
  /** The version that answered it. */
  version: number;
  rows: number;
  /** Compute time of the engine call that computed its rows (a dynamic batch's, when batched). */
  computeMs: number;
  /** false: the unfused reference path (HTTP's `?fused=false`). */
  fused: boolean;
}

/** What observes answered inference requests (cli/server-worker.ts: the Prometheus metrics). */
export interface InferenceObserver {
  observeInference(inference: InferenceObservation): void;
}
