/**
 * Holds every cluster worker of a server at its very start, before it loads anything: preload it
 * with `NODE_OPTIONS=--import <this file>` and name a directory in NORMSERVE_TEST_HOLD_DIR. Each
 * worker writes `held-<pid>` there and waits until a file `go` appears; the primary is not held.
 * A test can so change the world between the primary's start-up checks and the workers' own
 * start (take the port they are about to listen on) in that order, whatever the machine's speed.
 */
import cluster from 'node:cluster';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const directory = process.env.NORMSERVE_TEST_HOLD_DIR;
if (directory !== undefined && cluster.isWorker) {
  writeFileSync(join(directory, `held-${process.pid}`), '');
  while (!existsSync(join(directory, 'go'))) await sleep(10);
}
