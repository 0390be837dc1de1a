import { constants } from 'node:buffer';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { errnoOf, errnoWords, NormserveError } from '../errors/index.js';

/**
 * The largest input file read whole: V8's longest string (2^29 − 24 characters on 64-bit
 * Node 20), which the text of a CSV of numbers, one character per byte, must fit. A larger file
 * was read in full (seconds, and its size in memory) only to fail in the decoding with V8's
 * "Invalid string length".
 */
export const MAX_INPUT_FILE_BYTES = constants.MAX_STRING_LENGTH;

const grouped = (n: number) => n.toLocaleString('en-US');

/** The parts a file without a size is read in (readInputFile). */
const PART_BYTES = 1 << 20;

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
  const { file, size, regular } = await openInputFile(path, what, code);
  try {
    if (regular && size > 0) return await file.readFile();
    // No size to trust (a device, a pipe, stdin; /proc's files say 0): read in parts, counted.
    // Each part is filled before the next is taken: a pipe gives at most 64 KiB a read, and a
    // part per read held 16–27 times the bytes read (the second reader of 2026-12-04).
    const parts: Buffer[] = [];
    let total = 0;
    let part = Buffer.allocUnsafe(PART_BYTES);
    let used = 0;
    for (;;) {
      const { bytesRead } = await file.read(part, used, part.length - used, null);
      if (bytesRead === 0) return Buffer.concat([...parts, part.subarray(0, used)], total);
      total += bytesRead;
      if (total > MAX_INPUT_FILE_BYTES) throw overLimit(path, what, code);
      used += bytesRead;
      if (used === part.length) {
        parts.push(part);
        part = Buffer.allocUnsafe(PART_BYTES);
        used = 0;
      }
    }
  } catch (e) {
    throw inputFileError(e, path, what, code);
  } finally {
    await file.close();
  }
}

/**
 * readInputFile's bytes as UTF-8 text, a leading byte order mark — Excel's and Notepad's
 * "UTF-8" — dropped: the CSV parser drops it too, and JSON.parse would refuse it.
 */
export async function readInputText(
  path: string,
  what: string,
  code: 'DATA_INVALID' | 'TRAINING_CONFIG_INVALID' = 'DATA_INVALID',
): Promise<string> {
  const text = (await readInputFile(path, what, code)).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** An input file's bytes as they are read; `close` releases the file whether read or not. */
export interface InputFileParts extends AsyncIterable<Buffer> {
  /** The file's size in bytes when it was opened. */
  readonly size: number;
  close(): Promise<void>;
}

/**
 * The bytes of an input file as they are read, in parts of at most `partBytes`, refused as
 * readInputFile refuses it (no such file, a directory, over MAX_INPUT_FILE_BYTES, no permission)
 * before the first part: for a reader that takes rows as they come (the recalibrate CLI's
 * data file) and so never holds the whole text. The file is closed at the end of the bytes, when
 * the iteration is broken off, or by `close`.
 */
export async function inputFileParts(
  path: string,
  what: string,
  partBytes = 1 << 20,
): Promise<InputFileParts> {
  const { file, size } = await openInputFile(path, what, 'DATA_INVALID');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await file.close();
  };
  async function* parts(): AsyncGenerator<Buffer> {
    // Counted as read: a pipe, a device (/dev/zero) or stdin has no size to refuse it by, and a
    // file may grow while it is read (the recalibration attacker of 2026-12-04: /dev/zero held
    // the CLI until V8's "Invalid string length", a FIFO of rows grew its memory without end).
    let total = 0;
    try {
      for (;;) {
        const buffer = Buffer.allocUnsafe(partBytes);
        let bytesRead: number;
        try {
          ({ bytesRead } = await file.read(buffer, 0, partBytes, null));
        } catch (e) {
          throw inputFileError(e, path, what, 'DATA_INVALID');
        }
        if (bytesRead === 0) return;
        total += bytesRead;
        if (total > MAX_INPUT_FILE_BYTES) throw overLimit(path, what, 'DATA_INVALID');
        yield buffer.subarray(0, bytesRead);
      }
    } finally {
      await close();
    }
  }
  return { [Symbol.asyncIterator]: parts, size, close };
}

/** The file opened for reading once its metadata allow it (readInputFile's refusals). */
async function openInputFile(
  path: string,
  what: string,
  code: 'DATA_INVALID' | 'TRAINING_CONFIG_INVALID',
): Promise<{ file: FileHandle; size: number; regular: boolean }> {
  try {
    const stats = await stat(path);
    if (stats.isDirectory()) throw Object.assign(new Error(), { code: 'EISDIR' });
    if (stats.size > MAX_INPUT_FILE_BYTES) throw overLimit(path, what, code, stats.size);
    return { file: await open(path, 'r'), size: stats.size, regular: stats.isFile() };
  } catch (e) {
    throw inputFileError(e, path, what, code);
  }
}

/** An input file over MAX_INPUT_FILE_BYTES: by its size, or, without one, as it was read. */
function overLimit(
  path: string,
  what: string,
  code: 'DATA_INVALID' | 'TRAINING_CONFIG_INVALID',
  size?: number,
): NormserveError {
  const limit = grouped(MAX_INPUT_FILE_BYTES);
  const holds = size === undefined ? `more than ${limit}` : grouped(size);
  return new NormserveError(
    code,
    `cannot read ${what}${path}: it holds ${holds} bytes, over the limit of ${limit} bytes (512 MiB, the longest text Node holds)`,
  );
}

/** Why an input file cannot be read, in one line (`cannot read <what><path>: no such file`). */
function inputFileError(
  e: unknown,
  path: string,
  what: string,
  code: 'DATA_INVALID' | 'TRAINING_CONFIG_INVALID',
): NormserveError {
  if (e instanceof NormserveError) return e;
  const errno = errnoOf(e);
  const why =
    errno === 'ENOENT'
      ? 'no such file'
      : errno === 'EISDIR'
        ? 'it is a directory'
        : (errnoWords(e) ?? (e as Error).message);
  return new NormserveError(code, `cannot read ${what}${path}: ${why}`, { cause: e });
}
