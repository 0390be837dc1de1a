#!/usr/bin/env node
/**
 * The server's entry point (`npm start`): configuration from the environment, parsed once, then
 * either the cluster primary (WORKERS > 1, cluster-primary.ts) or a server process
 * (server-worker.ts).
 */
import cluster from 'node:cluster';
import { Command } from 'commander';
import { isNormserveError } from '../errors/index.js';
import {
  misspelledConfigVariables,
  parseServerConfig,
  type ServerConfig,
  serverConfigSchema,
} from '../service/server-config.js';
import type { FromWorker } from './cluster-messages.js';
import { EXIT_START_FAILED } from './exit-codes.js';
import { openFilesWarning } from './open-files-limit.js';
import { checkPortsBindable } from './port-preflight.js';

/**
 * The server takes no arguments (the environment is its configuration): `--help`/`-h` prints
 * usage and the main variables with their defaults (the schema's) and exits 0; anything else is
 * an error (commander's one line, exit 1).
 */
function parseArguments(argv: readonly string[]): void {
  const defaults = serverConfigSchema.parse({});
  const variables: [string, string][] = [
    ['PORT', `HTTP port (default ${defaults.PORT})`],
    ['HOST', `listening address (default ${defaults.HOST})`],
    ['GRPC_PORT', `gRPC port, 0 = no gRPC server (default ${defaults.GRPC_PORT})`],
    ['MODEL_REPOSITORY', `the model repository directory (default ${defaults.MODEL_REPOSITORY})`],
    ['WORKERS', `server processes sharing the port (default: the CPUs, here ${defaults.WORKERS})`],
    ['ADMIN_TOKEN', 'bearer token of the admin routes (default: generated, logged once)'],
    ['API_TOKEN', 'bearer token of the prediction routes (default: none, predictions are open)'],
    [
      'LOG_LEVEL',
      `fatal, error, warn, info, debug, trace or silent (default ${defaults.LOG_LEVEL})`,
    ],
  ];
  const width = Math.max(...variables.map(([name]) => name.length));
  new Command('normserve')
    .usage('(npm start, or node tools/start.mjs; no arguments)')
    .description(
      'Serves the models of a model repository over HTTP (TF Serving REST, Open Inference Protocol v2) and gRPC.',
    )
    .allowExcessArguments(false)
    .showHelpAfterError(
      '(the server takes no arguments: the environment configures it; see --help)',
    )
    .configureOutput({
      writeErr: (text) =>
        process.stderr.write(text.startsWith('error: ') ? `normserve: ${text}` : text),
    })
    .addHelpText(
      'after',
      [
        '',
        'The environment is the configuration: README.md, section Configuration, lists every',
        'variable. The main ones:',
        ...variables.map(([name, meaning]) => `  ${name.padEnd(width)}  ${meaning}`),
        '',
        'Example:',
        '  PORT=9000 GRPC_PORT=0 WORKERS=1 MODEL_REPOSITORY=./models npm start',
      ].join('\n'),
    )
    .parse(argv, { from: 'node' });
}

async function main(): Promise<void> {
  parseArguments(process.argv);
  let config: ServerConfig;
  try {
    config = parseServerConfig(process.env);
  } catch (e) {
    process.stderr.write(`normserve: ${isNormserveError(e) ? e.message : String(e)}\n`);
    process.exit(1);
  }
  // Once per server (not per worker). The value is not shown: it may be a token.
  if (cluster.isPrimary) {
    for (const { name, meant } of misspelledConfigVariables(process.env))
      process.stderr.write(
        `normserve: warning: the environment variable ${name} is not read (did you mean ${meant}?), so ${meant} keeps its ${meant in process.env ? 'own value' : 'default'}; README.md, section Configuration, lists every variable\n`,
      );
    const descriptors = openFilesWarning(config);
    if (descriptors !== undefined) process.stderr.write(`normserve: ${descriptors}\n`);
  }
  try {
    // The ports first: a taken one is said before the models load.
    if (cluster.isPrimary) await checkPortsBindable(config);
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
