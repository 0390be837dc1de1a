import type { DriftOptions } from '../../src/service/index.js';

/**
 * Drift options for service-level tests: every row sampled, one-minute windows, no size limit
 * that a test reaches; each test says what it decides (the action, its row threshold, sharing).
 */
export function testDriftOptions(
  decides: Pick<DriftOptions, 'autoRecalibrate' | 'autoMinRows'> & Partial<DriftOptions>,
): DriftOptions {
  return {
    sampleFraction: 1,
    windowMs: 60_000,
    windows: 10,
    threshold: 0.5,
    minRows: 100,
    sampleRows: 2048,
    sampleBytes: 16 * 1024 * 1024,
    ...decides,
  };
}
