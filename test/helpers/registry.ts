import { ModelRegistry } from '../../src/service/index.js';
import { makeRepository } from './app.js';

const opened: ModelRegistry[] = [];

/**
 * A ModelRegistry over a fresh copy of the bundled `models` (makeRepository), refreshed; closed by
 * closeRegistries (a test file's afterEach), its repository removed with the temporary files.
 */
export async function openRegistry(
  models: Parameters<typeof makeRepository>[0] = ['digits'],
): Promise<{ root: string; registry: ModelRegistry }> {
  const root = makeRepository(models);
  const registry = new ModelRegistry(root, { maxBatchSize: 64 });
  opened.push(registry);
  await registry.refresh();
  return { root, registry };
}

/** Closes every registry openRegistry opened (their engine threads, their timers). */
export function closeRegistries(): void {
  for (const registry of opened.splice(0)) registry.close();
}
