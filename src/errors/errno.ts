/**
 * The errno code of a failed system call (ENOENT, EEXIST…), if what was thrown has one. Anything
 * may be thrown, `null` and strings included: only an object's string `code` counts.
 */
export function errnoOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  return typeof e.code === 'string' ? e.code : undefined;
}
