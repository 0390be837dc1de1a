import type { StatisticsProbe } from '../inference/index.js';
import type { AvailableVersion } from './model-registry.js';

/**
 * What sees the served traffic (the drift service): asked for a statistics probe before each fused
 * engine call, told about the call after it. Both run on the request path, so they must be cheap
 * and must copy whatever they keep (`input` is the engine's reused input matrix). Only requests that
 * are answered are shown: a request refused after the engine ran (outputs that overflow float32)
 * is left out of `observed`, and the call's probe is handed to `refused` instead.
 */
export interface TrafficObserver {
  /** A probe to gather this call's BatchNorm input statistics, or undefined (not sampled). */
  probe(served: AvailableVersion, rows: number): StatisticsProbe | undefined;
  /**
   * After the engine call: `input` [rows, inputWidth], `outputs` [rows, outputWidth],
   * `probabilities` for classification, and the probe passed to the call.
   */
  observed(
    served: AvailableVersion,
    input: Float32Array,
    rows: number,
    outputs: Float32Array,
    probabilities: Float32Array | undefined,
    probe: StatisticsProbe | undefined,
  ): void;
  /**
   * The engine call that carried `probe` had a request refused: its taps summed that request's
   * rows with the others', so the call's statistics must not be used.
   */
  refused(served: AvailableVersion, probe: StatisticsProbe): void;
}
