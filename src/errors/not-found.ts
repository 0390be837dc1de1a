import { NormserveError } from './normserve-error.js';

/**
 * A version a caller named that the model does not have (VERSION_NOT_FOUND), in the words every
 * layer answers it with; `why` adds what happened to it (`it was deleted while being activated`).
 */
export const versionNotFound = (name: string, version: number, why?: string): NormserveError =>
  new NormserveError(
    'VERSION_NOT_FOUND',
    `model "${name}" has no version ${version}${why === undefined ? '' : ` (${why})`}`,
  );
