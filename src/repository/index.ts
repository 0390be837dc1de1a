export {
  ACTIVE_FILE,
  type ActiveIfWrite,
  type ActiveRecord,
  type ActiveWrite,
  type DroppedPin,
  droppedPinsWords,
  intentsReplacedWords,
  type WrittenPin,
} from './active-record.js';
export { ACTIVE_RECORD_LOCK_WAIT_MS } from './active-record-lock.js';
export {
  fsyncPath,
  removeOwnTemporariesSync,
  TEMP_PREFIX,
  writeFileAtomically,
} from './atomic-write.js';
export { isBrokenCheckpoint } from './broken-checkpoint.js';
export { removeStaleClaims, writeUnderClaim } from './lock-claims.js';
export type { LockOwner } from './lock-file.js';
export { loadModelDirectory, modelContentAt } from './model-directory.js';
export {
  acquireModelLock,
  type HeldLock,
  modelLockHolder,
  UNKNOWN_LOCK_OWNER,
} from './model-lock.js';
export {
  type HeldActiveRecord,
  JOBS_DIR,
  ModelRepository,
  type ModelRepositoryOptions,
  type PublishedVersion,
  type StagedVersion,
  VERSION_NAME_PATTERN,
} from './model-repository.js';
export {
  currentOwner,
  HEARTBEAT_INTERVAL_MS,
  isOwnerGone,
  isThisProcess,
  type ProcessOwner,
  processOwnerSchema,
  STALE_AFTER_MS,
  sameProcess,
} from './process-alive.js';
export { MAX_JSON_FILE_BYTES, RepositoryFiles } from './repository-files.js';
export {
  isStorageFailure,
  refusedByStorage,
  storageErrno,
  storageErrnos,
  storageFailure,
  UnsyncedWrite,
  unsyncedWarning,
} from './storage-failure.js';
export type { TemporariesRemoval } from './temporaries-removal.js';
