export { ACTIVE_RECORD_LOCK_WAIT_MS } from './active-record-lock.js';
export {
  fsyncPath,
  removeOwnTemporariesSync,
  TEMP_PREFIX,
  writeFileAtomically,
} from './atomic-write.js';
export { removeStaleClaims, writeUnderClaim } from './lock-claims.js';
export type { LockOwner } from './lock-file.js';
export {
  acquireModelLock,
  type HeldLock,
  modelLockHolder,
  UNKNOWN_LOCK_OWNER,
} from './model-lock.js';
export {
  ACTIVE_FILE,
  type ActiveIfWrite,
  type ActiveRecord,
  type ActiveWrite,
  type DroppedPin,
  droppedPinsWords,
  type HeldActiveRecord,
  isBrokenCheckpoint,
  JOBS_DIR,
  loadModelDirectory,
  ModelRepository,
  type ModelRepositoryOptions,
  modelContentAt,
  type PublishedVersion,
  type StagedVersion,
  type TemporariesRemoval,
  VERSION_NAME_PATTERN,
  type WrittenPin,
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
  storageErrno,
  storageErrnos,
  storageFailure,
  UnsyncedWrite,
  unsyncedWarning,
} from './storage-failure.js';
