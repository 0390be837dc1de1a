import { z } from 'zod';

/**
 * WORKERS > 1: the models that count for strict readiness (ModelRegistry.countsForReadiness) are
 * the server's, not each process's. The first worker to listen reports its set (the models of its
 * first scan and those that served since: `normserve:ready`), and the primary hands it to every
 * worker it forks after that (a replacement of one that died) in this environment variable, so
 * that a directory added after the server started — one bad copy on the shared volume — does not
 * make the replacement, and with it every other readiness probe that lands there, not ready while
 * the other workers say ready (review59).
 */
export const START_MODELS_VARIABLE = 'NORMSERVE_START_MODELS';

/**
 * Linux refuses to start a process with one environment string over 128 KiB (MAX_ARG_STRLEN,
 * E2BIG): a repository of thousands of models would stop every replacement from starting. Beyond
 * this the worker counts its own first scan, as before.
 */
const MAX_VARIABLE_CHARS = 64 * 1024;

/** The set, as the primary writes it into a forked worker's environment (none if too long). */
export function startModelsEnvironment(models: readonly string[]): Record<string, string> {
  const text = JSON.stringify(models);
  return text.length <= MAX_VARIABLE_CHARS ? { [START_MODELS_VARIABLE]: text } : {};
}

const startModelsSchema = z.array(z.string());

/** The set the primary gave this worker; undefined for a worker of the first generation (or alone). */
export function startModelsOf(env: NodeJS.ProcessEnv): string[] | undefined {
  const text = env[START_MODELS_VARIABLE];
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = startModelsSchema.safeParse(json);
  return parsed.success ? parsed.data : undefined;
}
