import { readInputFile } from '../training/index.js';

/**
 * The text of an input file (`--input`, `--data`), or one DATA_INVALID line saying why not
 * (`cannot read <what><path>: no such file`, a directory, a file over the size limit: training's
 * readInputFile, the one reader). A leading UTF-8 byte order mark — Excel's and Notepad's
 * "UTF-8" — is dropped: the CSV parser drops it too, and JSON.parse would refuse it.
 */
export async function readInputText(path: string, what: string): Promise<string> {
  const text = (await readInputFile(path, what)).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
