import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Checkpoint, ModelConfig } from '../checkpoint/index.js';
import type { NormserveError } from '../errors/index.js';
import {
  ACTIVE_FILE,
  ModelRepository,
  removeOwnTemporariesSync,
  unsyncedWarning,
} from '../repository/index.js';

/**
 * What a client of the model sees change between two versions' configs: the task, the class
 * labels (names and order: a client reading `label` or an output index), the input shape. A new
 * version of a model is served as soon as it is the highest without a record, so such a change
 * reaches the model's clients at once (h248: `--data iris.csv --task regression` published a
 * regression version over classification ones without a word).
 */
function contractChanges(before: ModelConfig, after: ModelConfig): string[] {
  const shape = (s: readonly number[]) => `[${s.join(', ')}]`;
  const labels = (l: readonly string[] | undefined) =>
    l === undefined
      ? 'none'
      : l.length > 4
        ? `${l.slice(0, 4).join(', ')}, … (${l.length})`
        : l.join(', ');
  const changes: string[] = [];
  if (before.task !== after.task) changes.push(`task ${before.task} → ${after.task}`);
  else if (!isDeepStrictEqual(before.labels, after.labels))
    changes.push(`labels ${labels(before.labels)} → ${labels(after.labels)}`);
  if (!isDeepStrictEqual(before.input_shape, after.input_shape))
    changes.push(`input shape ${shape(before.input_shape)} → ${shape(after.input_shape)}`);
  return changes;
}

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
  /**
   * Called with the staged version's directory once its files are written, before it is renamed
   * into place: a CLI ending on a signal tells by it whether its own version was published (by
   * what the directory holds: cli/staged-version.ts), whatever else is published beside it.
   */
  onStaged?: (path: string) => void,
): Promise<{
  version: number;
  path: string;
  storageWarning?: NormserveError;
  servedInstead?: { version: number; note?: string; record: string };
  unreadableRecord?: { reason: string };
  contractChange?: { from: number; changes: string[] };
}> {
  const repository = new ModelRepository(repositoryRoot);
  const name = checkpoint.config.name;
  const previous = (await repository.listVersions(name)).at(-1);
  const staged = await repository.stageVersion(checkpoint);
  try {
    onStaged?.(join(repository.modelPath(name), staged.tempName));
  } catch (e) {
    await staged.discard();
    throw e;
  }
  const { version, unsynced } = await staged.publish();
  const before = previous === undefined ? undefined : await repository.readConfig(name, previous);
  const changes = before ? contractChanges(before, checkpoint.config) : [];
  const path = repository.versionPath(name, version);
  const record = join(repository.modelPath(name), ACTIVE_FILE);
  let unreadableRecord: { reason: string } | undefined;
  const recorded = await repository.readActive(name).catch((e: unknown) => {
    // Its message names the file (relative to the repository) and what is wrong with it.
    unreadableRecord = { reason: e instanceof Error ? e.message : String(e) };
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
    ...(previous !== undefined && changes.length > 0
      ? { contractChange: { from: previous, changes } }
      : {}),
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
