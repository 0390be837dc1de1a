import { Command, CommanderError } from 'commander';
import { isNormserveError, quote } from '../errors/index.js';

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
  const command: Command = new Command(program).exitOverride().configureOutput({
    writeErr: (text) => process.stderr.write(text),
    outputError: (text, write) =>
      write(`${program}: ${strayArguments(text.replace(/^error: /, ''), command.args)}`),
  });
  return command;
}

/**
 * commander's "too many arguments. Expected 0 arguments but got 1." with the arguments named: they
 * are most often a flag's second value (`--hidden 64 32` for `--hidden 64,32`) or an unquoted
 * phrase (`--description my model`), which the count alone does not show (h248).
 */
function strayArguments(message: string, args: readonly string[]): string {
  const excess = /^too many arguments\. Expected (\d+) arguments? but got \d+\.\n?$/.exec(message);
  if (!excess || args.length === 0) return message;
  const stray = args.slice(Number(excess[1]));
  const shown = stray
    .slice(0, 3)
    .map((a) => quote(a))
    .join(', ');
  return `unexpected argument${stray.length === 1 ? '' : 's'} ${shown}${stray.length > 3 ? ', …' : ''}: each flag takes one value (a list is one value, comma-separated; quote text with spaces)\n`;
}
