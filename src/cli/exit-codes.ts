/** A worker's exit code for "could not start": the primary stops instead of replacing it. */
export const EXIT_START_FAILED = 78;
