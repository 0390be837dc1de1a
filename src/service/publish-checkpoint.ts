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
