/**
 * Environment variables that look like a misspelled configuration variable (`WORKER=2`,
 * `log_level=debug`, `GRPCPORT=0`): the server reads only the exact names, so such a setting is
 * silently ignored and the default served instead (newcomer review of 2026-12-04). A warning at
 * start names the variable and what it was likely meant to be.
 */
import { closestName } from '../errors/index.js';

/**
 * Each variable of `env` that is not one of `known` but is spelled like exactly one of them, with
 * that one (closestName). Sorted by name.
 */
export function misspelledVariables(
  env: Record<string, string | undefined>,
  known: readonly string[],
): { name: string; meant: string }[] {
  const found: { name: string; meant: string }[] = [];
  for (const name of Object.keys(env).sort()) {
    const meant = closestName(name, known);
    if (meant !== undefined) found.push({ name, meant });
  }
  return found;
}
