export {
  fsyncPath,
  publishDirectoryAtomically,
  TEMP_PREFIX,
  writeFileAtomically,
} from './atomic-write.js';
export { acquireModelLock, type HeldLock, type LockOwner } from './model-lock.js';
export {
  ACTIVE_FILE,
  JOBS_DIR,
  type ActiveRecord,
  loadModelDirectory,
  ModelRepository,
} from './model-repository.js';
