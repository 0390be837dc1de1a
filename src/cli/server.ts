#!/usr/bin/env node
/**
 * The server's entry point (`npm start`): configuration from the environment, parsed once, then
 * either the cluster primary (WORKERS > 1, cluster-primary.ts) or a server process
 * (server-worker.ts).
 */
import cluster from 'node:cluster';
import { isNormserveError } from '../errors/index.js';
import { parseServerConfig, type ServerConfig } from '../service/server-config.js';
import type { FromWorker } from './cluster-messages.js';
import { EXIT_START_FAILED } from './exit-codes.js';

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = parseServerConfig(process.env);
  } catch (e) {
    process.stderr.write(`normserve: ${isNormserveError(e) ? e.message : String(e)}\n`);
    process.exit(1);
  }
  try {
    // Imported on demand: the primary never loads the HTTP app, the engines or the models.
    if (config.WORKERS > 1 && cluster.isPrimary)
      await (await import('./cluster-primary.js')).runPrimary(config);
    else await (await import('./server-worker.js')).startServer(config);
  } catch (e) {
    // Expected start-up failures (a missing repository, a taken port) are one line, not a stack.
    const message = isNormserveError(e)
      ? e.message
      : e instanceof Error && 'code' in e
        ? e.message
        : undefined;
    if (message === undefined) throw e;
    if (cluster.isWorker) exitWorker(message);
    else {
      process.stderr.write(`normserve: ${message}\n`);
      process.exit(1);
    }
  }
}

/**
 * A cluster worker that cannot start hands its line to the primary, which prints it once however
 * many workers fail alike (the line itself when the channel is gone), and exits EXIT_START_FAILED
 * so that the primary stops instead of replacing it.
 */
function exitWorker(message: string): void {
  const alone = () => {
    process.stderr.write(`normserve: ${message}\n`);
    process.exit(EXIT_START_FAILED);
  };
  if (!process.send || !process.connected) alone();
  const failed: FromWorker = { type: 'normserve:start-failed', message };
  process.send!(failed, undefined, {}, (e: Error | null) =>
    e ? alone() : process.exit(EXIT_START_FAILED),
  );
}

await main();
