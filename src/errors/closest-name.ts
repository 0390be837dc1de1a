/**
 * Which known name a given one is likely a misspelling of: an environment variable (`WORKER` for
 * WORKERS: service/misspelled-variables.ts) or an option or field (`thread` for `threads`: the
 * "did you mean" of an unknown field, issue-message.ts).
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
 * The one name of `known` that `name` is a likely misspelling of: the same but for case and
 * underscores, or `allowedEdits` away (names shorter than 4 characters aside); undefined when
 * none is, or when two are (no guess between them).
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  if (name.length < 4 || known.includes(name)) return undefined;
  const candidates = known.filter(
    (k) =>
      folded(k) === folded(name) ||
      editDistance(name.toUpperCase(), k.toUpperCase()) <=
        Math.min(allowedEdits(name), allowedEdits(k)),
  );
  return candidates.length === 1 ? candidates[0] : undefined;
}
