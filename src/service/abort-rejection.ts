/**
 * A promise that rejects once `signal` aborts (at once if it already has), with `reason()` as it
 * is then (the signal's own reason by default), to race against a wait that the abort must end;
 * it never settles without a signal. `dispose` once the wait is over, so that the signal no
 * longer holds the listener and what it reaches. The promise is marked handled: a wait that ended
 * first leaves no unhandled rejection behind.
 */
export function rejectionOnAbort(
  signal: AbortSignal | undefined,
  reason: () => unknown = () => signal?.reason,
): { rejects: Promise<never>; dispose: () => void } {
  let onAbort = () => {};
  const rejects = new Promise<never>((_, reject) => {
    if (signal === undefined) return;
    onAbort = () => reject(reason());
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  rejects.catch(() => undefined);
  return { rejects, dispose: () => signal?.removeEventListener('abort', onAbort) };
}
