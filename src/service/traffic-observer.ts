import type { StatisticsProbe } from '../inference/index.js';
import type { AvailableVersion } from './model-registry.js';

/**
 * What sees the served traffic (the drift service): asked for a statistics probe before each fused
 * engine call, told about the call after it. Both run on the request path, so they must be cheap
 * and must copy whatever they keep (`input` is the engine's reused input matrix).
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
}
