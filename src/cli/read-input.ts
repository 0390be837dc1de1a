import { readFile } from 'node:fs/promises';
import { NormserveError } from '../errors/index.js';

/**
 * The text of an input file (`--input`, `--data`), or one DATA_INVALID line saying why not
 * (`cannot read <what><path>: no such file`). A leading UTF-8 byte order mark — Excel's and
 * Notepad's "UTF-8" — is dropped: the CSV parser drops it too, and JSON.parse would refuse it.
 */
export async function readInputText(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'it is a directory'
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied'
            : (e as Error).message;
    throw new NormserveError('DATA_INVALID', `cannot read ${what}${path}: ${why}`, { cause: e });
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
