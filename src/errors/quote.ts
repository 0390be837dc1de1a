/** Characters of a client's string quoted back in a message; the rest is cut, marked "…". */
export const ECHO_CHARS = 64;

/**
 * `value` quoted for a message, cut to ECHO_CHARS characters: a message (and the problem that
 * carries it as `detail`, `error` and an `errors` entry) never grows with what a client sent.
 */
export function quote(value: string): string {
  return JSON.stringify(value.length > ECHO_CHARS ? `${value.slice(0, ECHO_CHARS)}…` : value);
}
