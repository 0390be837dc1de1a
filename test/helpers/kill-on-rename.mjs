/**
 * A crash at an exact point, for a child process: preloaded with `NODE_OPTIONS=--import <this
 * file>`, it kills its own process with SIGKILL just before a `rename` (node:fs/promises) whose
 * destination matches the regular expression in NORMSERVE_TEST_KILL_ON_RENAME — as a power cut or
 * the OOM killer would stop it there: nothing after that point runs, no handler, no cleanup.
 */
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

export const KILL_ON_RENAME_MODULE = new URL(import.meta.url).pathname;

const pattern = process.env.NORMSERVE_TEST_KILL_ON_RENAME;
if (pattern) {
  const destination = new RegExp(pattern);
  const rename = fs.promises.rename;
  fs.promises.rename = async function killingRename(from, to) {
    if (destination.test(String(to))) process.kill(process.pid, 'SIGKILL');
    return rename.call(this, from, to);
  };
  syncBuiltinESMExports();
}
