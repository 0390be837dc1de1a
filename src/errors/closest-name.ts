/**
 * Which known name a given one is likely a misspelling of: an environment variable (`WORKER` for
 * WORKERS: service/misspelled-variables.ts) or an option or field (`thread` for `threads`: the
 * "did you mean" of an unknown field, issue-message.ts).
 */
import { quote } from './quote.js';

/**
 * Edit distance with adjacent transpositions (optimal string alignment, Damerau 1964): insertions,
 * deletions, substitutions and swaps of two neighbours each count 1. `WROKERS` is 1 from `WORKERS`.
 * Three rows of the table at a time: O(|b|) memory.
 */
export function editDistance(a: string, b: string): number {
  const cols = b.length + 1;
  let before = new Int32Array(cols);
  let previous = Int32Array.from({ length: cols }, (_, j) => j);
  let current = new Int32Array(cols);
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, before[j - 2]! + 1);
      current[j] = best;
    }
    [before, previous, current] = [previous, current, before];
  }
  return previous[cols - 1]!;
}

/** A name as its spelling is compared: case and underscores aside (`log_level`, `LOGLEVEL`). */
const folded = (name: string): string => name.toUpperCase().replaceAll('_', '');

/**
 * Names longer than this are no one's misspelling, and are not compared: a request's unknown key
 * may be megabytes long (the edit distance of a 1 MB key held the event loop for seconds).
 */
const MAX_NAME_CHARS = 64;

/** The units a name may end with (`DRIFT_WINDOW_MS`, `RECALIBRATION_MEMORY_BYTES`). */
const UNIT_SUFFIX = /^_(MS|US|S|BYTES)$/i;

/**
 * How far `name` may be from `known` to count as its misspelling: one edit; two for long names
 * (12 characters or more) that begin with the same word (`MODEL_…`). Looser warned of common
 * variables: `HOME` is 2 from `HOST`, `NPM_TOKEN` 2 from `API_TOKEN`, `GRPC_HOST` 2 from
 * `GRPC_PORT` (test/service/misspelled-variables.test.ts runs a shell's, a container's, CI's and
 * npm's environment through it).
 */
function allowedEdits(name: string, known: string): number {
  const firstWord = (n: string) => n.toUpperCase().split('_')[0];
  return name.length >= 12 && known.length >= 12 && firstWord(name) === firstWord(known) ? 2 : 1;
}

/**
 * The one name of `known` that `name` is a likely misspelling of, undefined when none is or when
 * two are (no guess between them): the name with its unit left off (`DRIFT_WINDOW` for
 * DRIFT_WINDOW_MS), else the same but for case and underscores, or `allowedEdits` away. Names
 * shorter than 4 characters or longer than MAX_NAME_CHARS are not guessed at.
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  if (name.length < 4 || name.length > MAX_NAME_CHARS || known.includes(name)) return undefined;
  const upper = name.toUpperCase();
  const unitLeftOff = known.filter(
    (k) => k.toUpperCase().startsWith(upper) && UNIT_SUFFIX.test(k.slice(name.length)),
  );
  if (unitLeftOff.length === 1) return unitLeftOff[0];
  const candidates = known.filter((k) => {
    if (folded(k) === folded(name)) return true;
    const edits = allowedEdits(name, k);
    // Each edit changes the length by at most one: a longer gap needs no table.
    if (Math.abs(k.length - name.length) > edits) return false;
    return editDistance(upper, k.toUpperCase()) <= edits;
  });
  return candidates.length === 1 ? candidates[0] : undefined;
}

/** ` (did you mean "threads"?)` after an unknown name with a likely meaning; else nothing. */
export function didYouMean(name: string, known: readonly string[]): string {
  const meant = closestName(name, known);
  return meant === undefined ? '' : ` (did you mean ${quote(meant)}?)`;
}
