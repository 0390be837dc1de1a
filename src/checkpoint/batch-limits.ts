/**
 * Upper bounds of dynamic batching's settings, in config.json's `dynamic_batching` and in the
 * environment alike (BATCH_MAX_DELAY_US, BATCH_MAX_ROWS: service/server-config.ts, which imports
 * this file alone: the cluster primary parses the configuration and loads no layer code).
 */
export const BATCH_LIMITS = { maxDelayUs: 1_000_000, maxRows: 1_000_000 } as const;
