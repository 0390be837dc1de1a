/**
 * The drift settings the server configuration names (kept apart from the drift service, so the
 * configuration schema — read by the cluster primary too — imports nothing heavy).
 */
export const AUTO_RECALIBRATE_MODES = ['off', 'recommend', 'candidate', 'promote'] as const;
export type AutoRecalibrate = (typeof AUTO_RECALIBRATE_MODES)[number];

/**
 * The default DRIFT_THRESHOLD: a model score (its worst BatchNorm's mean |standardised shift| +
 * |log std ratio|) that clean digits traffic stays well under and night-shifted traffic passes
 * within the first hundred rows (measured: docs/drift.md, test/drift/drift-night-shift.test.ts).
 */
export const DEFAULT_DRIFT_THRESHOLD = 0.5;
