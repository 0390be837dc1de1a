export {
  fsyncPath,
  publishDirectoryAtomically,
  TEMP_PREFIX,
  writeFileAtomically,
} from './atomic-write.js';
export { acquireModelLock, type HeldLock, type LockOwner } from './model-lock.js';
export {
  ACTIVE_FILE,
  type ActiveRecord,
  JOBS_DIR,
  loadModelDirectory,
  ModelRepository,
} from './model-repository.js';
export { MAX_JSON_FILE_BYTES, RepositoryFiles } from './repository-files.js';
