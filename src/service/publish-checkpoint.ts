import { join } from 'node:path';
import type { Checkpoint } from '../checkpoint/index.js';
import type { NormserveError } from '../errors/index.js';
import {
  ACTIVE_FILE,
  ModelRepository,
  removeOwnTemporariesSync,
  unsyncedWarning,
} from '../repository/index.js';

/**
 * Publishes a checkpoint as the next version of its model in a repository directory, atomically
 * (a failed or interrupted run leaves no partial version). Returns the version and its path,
 * `storageWarning` when it is published but the model directory could not be synced after, and
 * `servedInstead` when the model's active-version record names another version: the new one is
 * then not served (only without a record is the highest version served), which the caller says;
 * `unreadableRecord` when that record cannot be read: nothing new is served then either (a server
 * keeps the version it served, none after a restart, until a version is activated).
 */
export async function publishCheckpoint(
  repositoryRoot: string,
  checkpoint: Checkpoint,
): Promise<{
  version: number;
  path: string;
  storageWarning?: NormserveError;
  servedInstead?: { version: number; note?: string; record: string };
  unreadableRecord?: { record: string; reason: string };
}> {
  const repository = new ModelRepository(repositoryRoot);
  const { version, unsynced } = await repository.publishVersion(checkpoint);
  const name = checkpoint.config.name;
  const path = repository.versionPath(name, version);
  const record = join(repository.modelPath(name), ACTIVE_FILE);
  let unreadableRecord: { record: string; reason: string } | undefined;
  const recorded = await repository.readActive(name).catch((e: unknown) => {
    unreadableRecord = { record, reason: e instanceof Error ? e.message : String(e) };
    return undefined;
  });
  const servedInstead =
    recorded !== undefined && recorded.version !== version
      ? {
          version: recorded.version,
          ...(recorded.note !== undefined ? { note: recorded.note } : {}),
          record,
        }
      : undefined;
  const result = {
    version,
    path,
    ...(servedInstead ? { servedInstead } : {}),
    ...(unreadableRecord ? { unreadableRecord } : {}),
  };
  if (!unsynced) return result;
  const happened = `version ${version} of "${name}" was published`;
  return { ...result, storageWarning: unsyncedWarning(unsynced, happened, repositoryRoot) };
}

/**
 * The directory the next version of model `name` would be published as in a repository now, for a
 * check before the work that makes it (a training run of minutes); another publisher may still
 * take the number first, and publishing then takes the next one.
 */
export async function nextVersionPath(repositoryRoot: string, name: string): Promise<string> {
  const repository = new ModelRepository(repositoryRoot);
  return repository.versionPath(name, await repository.nextVersion(name));
}

/**
 * Removes what this process's unfinished publish of model `name` left in a repository, at once
 * (removeOwnTemporariesSync): for a CLI ending on SIGINT or SIGTERM while it publishes.
 */
export function removeOwnPublishTemporariesSync(repositoryRoot: string, name: string): void {
  removeOwnTemporariesSync(new ModelRepository(repositoryRoot).modelPath(name));
}
