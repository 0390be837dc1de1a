/**
 * Environment variables that look like a misspelled configuration variable (`WORKER=2`,
 * `log_level=debug`, `GRPCPORT=0`): the server reads only the exact names, so such a setting is
 * silently ignored and the default served instead (newcomer review of 2026-12-04). A warning at
 * start names the variable and what it was likely meant to be.
 */

/**
 * Edit distance with adjacent transpositions (optimal string alignment, Damerau 1964): insertions,
 * deletions, substitutions and swaps of two neighbours each count 1. `WROKERS` is 1 from `WORKERS`.
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[rows - 1]![cols - 1]!;
}

/** A name as its spelling is compared: case and underscores aside (`log_level`, `LOGLEVEL`). */
const folded = (name: string): string => name.toUpperCase().replaceAll('_', '');

/**
 * How far a name may be from a known one to count as its misspelling: one edit, or two for names
 * of 8 characters or more. Tighter would miss `WORKER`; looser warns of the shell's own variables
 * (`HOME` is 2 from `HOST`, `PATH` 3 from `PORT`: test/service/misspelled-variables.test.ts runs a
 * shell's, a container's and npm's environment through it).
 */
const allowedEdits = (name: string): number => (name.length >= 8 ? 2 : 1);

/**
 * Each variable of `env` that is not one of `known` but is spelled like exactly one of them, with
 * that one: the same name but for case and underscores, or `allowedEdits` away (names shorter than
 * 4 characters aside). Sorted by name.
 */
export function misspelledVariables(
  env: Record<string, string | undefined>,
  known: readonly string[],
): { name: string; meant: string }[] {
  const knownSet = new Set(known);
  const found: { name: string; meant: string }[] = [];
  for (const name of Object.keys(env).sort()) {
    if (knownSet.has(name) || name.length < 4) continue;
    const candidates = known.filter((k) => {
      if (folded(k) === folded(name)) return true;
      return editDistance(name.toUpperCase(), k) <= Math.min(allowedEdits(name), allowedEdits(k));
    });
    if (candidates.length === 1) found.push({ name, meant: candidates[0]! });
  }
  return found;
}
