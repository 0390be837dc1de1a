import { constants as bufferConstants } from 'node:buffer';
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { type FileHandle, open, realpath } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import {
  type SafetensorsExpectation,
  type SafetensorsLayout,
  safetensorsHeaderLength,
  safetensorsLayout,
} from '../checkpoint/index.js';
import { errnoOf, NormserveError } from '../errors/index.js';

/** Largest JSON file of a repository read whole (config.json, metrics.json, records). */
export const MAX_JSON_FILE_BYTES = 16 * 1024 * 1024;
/** Whether a failure is ENOENT: the path is not there. */
export const isMissing = (e: unknown): boolean => errnoOf(e) === 'ENOENT';
/** Bytes per read of a large file (fs reads take at most 2 GiB at a time). */
const READ_CHUNK_BYTES = 64 * 1024 * 1024;
/** Bytes per read of a file being hashed (sha256): a small buffer, reused. */
const HASH_CHUNK_BYTES = 1024 * 1024;

/**
 * How every file of a repository is opened for reading. O_NONBLOCK: opening a FIFO for reading
 * otherwise waits for a writer, forever, holding one of libuv's four thread-pool threads (a FIFO
 * at `digits/2/model.safetensors` kept the server from ever listening, and one at
 * `active-version.json` froze every later poll and `:activate`); with it the open returns at
 * once and fstat refuses the FIFO. A regular file ignores the flag. (Windows has no O_NONBLOCK,
 * and no FIFOs in the file system.)
 */
const READ_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0);

/**
 * Opens `path` for reading without ever blocking on it (READ_FLAGS), for a file of the
 * repository or a directory (fsync): the one way this folder opens what it did not just create.
 */
export function openWithoutBlocking(path: string): Promise<FileHandle> {
  return open(path, READ_FLAGS);
}

/**
 * Reading the files of one repository, treating them as hostile: a file must resolve (symbolic
 * links followed) to a place inside the repository, sizes are checked before anything is read
 * whole, and every message names the file relative to the repository, never by absolute path
 * (reasons of FAILED versions are shown on unauthenticated routes).
 */
export class RepositoryFiles {
  private readonly root: string;
  private realRoot: string | undefined;

  constructor(root: string) {
    this.root = root;
  }

  /** `path` relative to the repository, for messages. */
  label(path: string): string {
    return relative(this.root, path).split(sep).join('/');
  }

  /**
   * The real path of `path`, which must lie inside the repository (the repository itself may be
   * a link); undefined when it does not exist.
   */
  async resolveInside(path: string): Promise<string | undefined> {
    let real: string;
    try {
      real = await realpath(path);
      this.realRoot ??= await realpath(this.root);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw this.unreadable(path, e);
    }
    const root = this.realRoot;
    if (real !== root && !real.startsWith(root + sep)) {
      throw new NormserveError(
        'REPOSITORY_ERROR',
        `${this.label(path)}: a symbolic link to a place outside the model repository (refused)`,
      );
    }
    return real;
  }

  /** A JSON file's text, at most `maxBytes`; undefined when the file does not exist. */
  async readText(path: string, maxBytes = MAX_JSON_FILE_BYTES): Promise<string | undefined> {
    const bytes = await this.readBytes(path, maxBytes);
    return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
  }

  /** A small file's bytes, at most `maxBytes`; undefined when the file does not exist. */
  async readBytes(path: string, maxBytes = MAX_JSON_FILE_BYTES): Promise<Uint8Array | undefined> {
    return this.withFile(path, async (handle, size) => {
      if (size > maxBytes) {
        throw new NormserveError(
          'REPOSITORY_ERROR',
          `${this.label(path)}: ${size} bytes, more than the ${maxBytes} a file of this kind may have`,
        );
      }
      return this.readRange(handle, path, 0, size);
    });
  }

  /**
   * The SHA-256 (hex) of a file of any size, read in chunks of HASH_CHUNK_BYTES with the event
   * loop free between them; undefined when the file does not exist.
   */
  async sha256(path: string): Promise<string | undefined> {
    return this.withFile(path, async (handle, size) => {
      const hash = createHash('sha256');
      const chunk = Buffer.allocUnsafe(Math.min(HASH_CHUNK_BYTES, size));
      let done = 0;
      try {
        while (done < size) {
          const { bytesRead } = await handle.read(chunk, 0, chunk.length, done);
          if (bytesRead === 0) break;
          hash.update(chunk.subarray(0, bytesRead));
          done += bytesRead;
        }
      } catch (e) {
        throw this.unreadable(path, e);
      }
      return hash.digest('hex');
    });
  }

  /**
   * A safetensors file read in the order that reads least: the 8-byte length prefix, then the
   * header, checked against the file's size (every rule of the format) and then by `check`, which
   * throws to refuse the file (the caller's expectations: the tensors its config names); only
   * then the data section, exactly the bytes the accepted header accounts for. A huge or sparse
   * file whose header is wrong, or names a tensor nobody expects, costs a header's read.
   * Undefined when the file does not exist.
   */
  async readSafetensors<T>(
    path: string,
    check: (layout: SafetensorsLayout) => T,
    expect: SafetensorsExpectation = {},
  ): Promise<{ layout: SafetensorsLayout; data: Uint8Array; checked: T } | undefined> {
    const name = this.label(path);
    return this.withFile(path, async (handle, size) => {
      const first = await this.readRange(handle, path, 0, Math.min(8, size));
      const headerLength = safetensorsHeaderLength(first, size, name);
      const prefix = await this.readRange(handle, path, 0, 8 + headerLength);
      const layout = safetensorsLayout(prefix, size, name, expect);
      const dataLength = size - layout.dataStart;
      if (dataLength > bufferConstants.MAX_LENGTH) {
        throw new NormserveError(
          'SAFETENSORS_INVALID',
          `${name}: ${dataLength} bytes of tensor data, more than one process can hold (${bufferConstants.MAX_LENGTH})`,
        );
      }
      const checked = check(layout);
      const data = await this.readRange(handle, path, layout.dataStart, dataLength);
      return { layout, data, checked };
    });
  }

  private async withFile<T>(
    path: string,
    use: (handle: FileHandle, size: number) => Promise<T>,
  ): Promise<T | undefined> {
    const real = await this.resolveInside(path);
    if (real === undefined) return undefined;
    let handle: FileHandle;
    try {
      handle = await openWithoutBlocking(real);
    } catch (e) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw this.unreadable(path, e);
    }
    try {
      // Refused from the open descriptor (fstat), so what is read is what was checked.
      const info = await handle.stat();
      if (!info.isFile()) {
        throw new NormserveError('REPOSITORY_ERROR', `${this.label(path)}: not a regular file`);
      }
      return await use(handle, info.size);
    } finally {
      await handle.close();
    }
  }

  /** Bytes [start, start + length) of an open file, in chunks; short files are an error. */
  private async readRange(
    handle: FileHandle,
    path: string,
    start: number,
    length: number,
  ): Promise<Uint8Array> {
    const bytes = Buffer.allocUnsafe(length);
    let done = 0;
    try {
      while (done < length) {
        const { bytesRead } = await handle.read(
          bytes,
          done,
          Math.min(READ_CHUNK_BYTES, length - done),
          start + done,
        );
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (e) {
      throw this.unreadable(path, e);
    }
    if (done < length) {
      throw new NormserveError(
        'REPOSITORY_ERROR',
        `${this.label(path)}: the file shrank while being read`,
      );
    }
    return bytes;
  }

  private unreadable(path: string, e: unknown): NormserveError {
    return new NormserveError(
      'REPOSITORY_ERROR',
      `${this.label(path)}: cannot be read (${errnoOf(e) ?? (e instanceof Error ? e.message : String(e))})`,
      { cause: e },
    );
  }
}
