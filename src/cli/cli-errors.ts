import { isNormserveError } from '../errors/index.js';

/**
 * Runs a CLI's main function: an expected failure prints one line (`<program>: <message>`) to
 * stderr and exits 1; anything else prints the stack, since it is a bug.
 */
export async function runCli(program: string, main: () => Promise<void>): Promise<void> {
  // `... | head` closes stdout early: that is the reader's choice, not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  try {
    await main();
  } catch (e) {
    if (isNormserveError(e)) {
      process.stderr.write(`${program}: ${e.message}\n`);
    } else if (
      e instanceof Error &&
      'code' in e &&
      typeof e.code === 'string' &&
      e.code.startsWith('commander.')
    ) {
      // commander already printed its message
    } else {
      process.stderr.write(
        `${program}: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
      );
    }
    process.exitCode = 1;
  }
}
