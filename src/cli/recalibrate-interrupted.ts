import { isThisProcess, type LockOwner, STALE_AFTER_MS } from '../service/index.js';

/**
 * What an interrupted run says of the model's lock, once checked (`holder`: what its file says
 * now): released; or, when the release failed (the CLI's service logs nothing, so this line is
 * what tells), still held by this process, which ends right after, so the next run breaks it.
 */
export function interruptedLine(
  signal: NodeJS.Signals,
  dir: string,
  holder: LockOwner | 'unreadable' | undefined,
): string {
  const said = `recalibrate: interrupted (${signal}) before publishing; nothing was written, and`;
  if (holder === 'unreadable')
    return `${said} whether the lock on ${dir} is released is not known: its file cannot be read\n`;
  if (holder !== undefined && isThisProcess(holder))
    return `${said} the lock on ${dir} could not be released: its file names this process, which ends now, so the next recalibration on this host breaks it as stale (on another host, ${STALE_AFTER_MS / 1000} s after this one ends)\n`;
  return `${said} the lock on ${dir} is released\n`;
}
