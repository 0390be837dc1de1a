/**
 * A crash at an exact point, for a child process: preloaded with `NODE_OPTIONS=--import <this
 * file>`, it kills its own process with SIGKILL just before a `rename` (node:fs/promises) whose
 * destination matches the regular expression in NORMSERVE_TEST_KILL_ON_RENAME, or just after one
 * whose destination matches NORMSERVE_TEST_KILL_AFTER_RENAME (the rename done, nothing after it:
 * not even the directory's fsync) — as a power cut or the OOM killer would stop it there: nothing
 * after that point runs, no handler, no cleanup.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

export const KILL_ON_RENAME_MODULE = new URL(import.meta.url).pathname;

const before = process.env.NORMSERVE_TEST_KILL_ON_RENAME;
const after = process.env.NORMSERVE_TEST_KILL_AFTER_RENAME;
if (before || after) {
  const killBefore = before ? new RegExp(before) : undefined;
  const killAfter = after ? new RegExp(after) : undefined;
  const rename = fs.promises.rename;
  fs.promises.rename = async function killingRename(from, to) {
    if (killBefore?.test(String(to))) process.kill(process.pid, 'SIGKILL');
    await rename.call(this, from, to);
    if (killAfter?.test(String(to))) process.kill(process.pid, 'SIGKILL');
  };
  syncBuiltinESMExports();
}
