import type { Checkpoint } from '../checkpoint/index.js';
import { ModelRepository } from '../repository/index.js';

/**
 * Publishes a checkpoint as the next version of its model in a repository directory, atomically
 * (a failed or interrupted run leaves no partial version). Returns the version and its path.
 */
export async function publishCheckpoint(
  repositoryRoot: string,
  checkpoint: Checkpoint,
): Promise<{ version: number; path: string }> {
  const repository = new ModelRepository(repositoryRoot);
  const version = await repository.publishVersion(checkpoint);
  return { version, path: repository.versionPath(checkpoint.config.name, version) };
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
