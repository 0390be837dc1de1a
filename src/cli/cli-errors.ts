import { Command, CommanderError } from 'commander';
import { isNormserveError } from '../errors/index.js';

/**
 * Runs a CLI's main function: an expected failure prints one line (`<program>: <message>`) to
 * stderr and exits 1; anything else prints the stack, since it is a bug. commander's own exits
 * (`--help`, a missing or unknown flag) keep commander's exit code: 0 for --help.
 */
export async function runCli(program: string, main: () => Promise<void>): Promise<void> {
  // `... | head` closes stdout early: that is the reader's choice, not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  // `... 2>&1 | head` closes stderr early: progress and notes written to it after that are
  // dropped, and the run goes on to its end (an uncaught EPIPE ended training unpublished, with
  // no message and exit 1). Nothing else can be said about stderr, as it is where we would say it.
  process.stderr.on('error', () => {});
  try {
    await main();
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed the usage (--help: exit code 0) or its one-line error (1)
      process.exitCode = e.exitCode;
      return;
    }
    if (isNormserveError(e)) {
      process.stderr.write(`${program}: ${e.message}\n`);
    } else {
      process.stderr.write(
        `${program}: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
      );
    }
    process.exitCode = 1;
  }
}

/**
 * A CLI's commander program: its own errors (an unknown option, a bad choice, a missing value)
 * read `<program>: <message>` on one stderr line, as every other error of the CLI does
 * (docs/errors.md), not commander's `error: <message>`; they end in runCli (exitOverride).
 */
export function cliCommand(program: string): Command {
  return new Command(program).exitOverride().configureOutput({
    writeErr: (text) => process.stderr.write(text),
    outputError: (text, write) => write(`${program}: ${text.replace(/^error: /, '')}`),
  });
}
