import { NormserveError } from './normserve-error.js';

/**
 * A deletion of the version a model serves (ACTIVE_VERSION_DELETE), in the words every layer
 * answers it with: the registry's check and the repository's, under the record's lock.
 */
export const activeVersionDelete = (name: string, version: number): NormserveError =>
  new NormserveError(
    'ACTIVE_VERSION_DELETE',
    `version ${version} is the active version of "${name}"; activate another version first`,
  );
