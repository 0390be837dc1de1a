import { constants } from 'node:buffer';
import { readFile, stat } from 'node:fs/promises';
import { NormserveError } from '../errors/index.js';

/**
 * The largest input file read whole: V8's longest string (2^29 − 24 characters on 64-bit
 * Node 20), which the text of a CSV of numbers, one character per byte, must fit. A larger file
 * was read in full (seconds, and its size in memory) only to fail in the decoding with V8's
 * "Invalid string length".
 */
export const MAX_INPUT_FILE_BYTES = constants.MAX_STRING_LENGTH;

const grouped = (n: number) => n.toLocaleString('en-US');

/**
 * The bytes of an input file (`--data`, `--input`, a training config), or one line saying why
 * not: `cannot read <what><path>: no such file` (`what` is e.g. "data file ", with its space).
 * A directory and a file over MAX_INPUT_FILE_BYTES are refused from their metadata, before reading.
 */
export async function readInputFile(
  path: string,
  what: string,
  code: 'DATA_INVALID' | 'TRAINING_CONFIG_INVALID' = 'DATA_INVALID',
): Promise<Buffer> {
  const refuse = (why: string, cause?: unknown) =>
    new NormserveError(code, `cannot read ${what}${path}: ${why}`, { cause });
  try {
    const stats = await stat(path);
    if (stats.isDirectory()) throw Object.assign(new Error(), { code: 'EISDIR' });
    if (stats.size > MAX_INPUT_FILE_BYTES)
      throw refuse(
        `it holds ${grouped(stats.size)} bytes, over the limit of ${grouped(MAX_INPUT_FILE_BYTES)} bytes (512 MiB, the longest text Node holds)`,
      );
    return await readFile(path);
  } catch (e) {
    if (e instanceof NormserveError) throw e;
    const errno = (e as NodeJS.ErrnoException).code;
    throw refuse(
      errno === 'ENOENT'
        ? 'no such file'
        : errno === 'EISDIR'
          ? 'it is a directory'
          : errno === 'EACCES' || errno === 'EPERM'
            ? 'permission denied'
            : (e as Error).message,
      e,
    );
  }
}
