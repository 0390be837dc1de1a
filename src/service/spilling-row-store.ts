import { type FileHandle, mkdtemp, open, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf, NormserveError } from '../errors/index.js';
import { MemoryRowStore, type RowBlockSource, type RowStore } from '../recalibration/index.js';
import { storageErrno } from '../repository/index.js';

/**
 * What an operator can do about a spill file the storage refused: the server spills under
 * os.tmpdir() (TMPDIR), and keeps RECALIBRATION_MEMORY_BYTES of rows in memory before it does.
 */
const SPILL_ADVICE = {
  STORAGE_FULL: (parent: string) =>
    `free space in ${parent}, set TMPDIR to a directory with room, or raise RECALIBRATION_MEMORY_BYTES to keep more of the rows in memory`,
  STORAGE_UNAVAILABLE: () =>
    'set TMPDIR to a directory on a working, writable file system, or raise RECALIBRATION_MEMORY_BYTES to keep more of the rows in memory',
  /** EMFILE, ENFILE: no descriptor was free, which no directory changes (open-files-limit.ts). */
  DESCRIPTORS: () =>
    'retry once fewer files are open: the process or the machine had no file descriptor free (raise ulimit -n, or lower MAX_CONNECTIONS)',
} as const;

/**
 * The rows of an `exact` or `prior` recalibration, kept until every BatchNorm has read them:
 * the first `memoryBytes` in memory, the rest appended to a temporary file (in its own directory
 * under `parent`), so that a 1 M-row upload does not hold 256 MB of rows (64 float32 features)
 * in the server. Reading back goes through one reused block of `blockRows` rows. The file holds
 * the machine's float32 bytes and is read by the process that wrote it, through the handle it
 * opened: its name and directory are removed as soon as it is open, so the kernel frees its space
 * when the handle closes, however the process ends (a worker killed mid-upload left up to a
 * gigabyte in TMPDIR for good, an emptyDir that outlives container restarts: h251). Where the
 * name cannot be removed at once (a file system that refuses to unlink an open file), close()
 * removes it.
 *
 * The file is also the faster place (a budget of 0): written rows land in the page cache without
 * a page fault each, while fresh process memory is faulted in and zeroed page by page — 200,000
 * digits rows through HTTP took 0.76–0.80× the wall time and 0.77–0.82× the server CPU with every
 * row in the file (bench/README.md, "Recalibration", third round). The server's default budget is
 * still 64 MiB: a default should not put every upload on disk.
 * Where no temporary directory can be created (a read-only filesystem), the rows stay in memory
 * instead and `onSpillUnavailable` is told once. A spill file the storage fails later (a full
 * device, EIO; storage-failure.ts's errno table) rejects with STORAGE_FULL (507) or
 * STORAGE_UNAVAILABLE (503) naming the file and what to do; one that ends before what was written
 * to it (shortened through /proc, or where its name stayed) with STORAGE_UNAVAILABLE.
 */
export class SpillingRowStore implements RowStore {
  private readonly memory: MemoryRowStore;
  private memoryRows: number;
  private file: FileHandle | undefined;
  private directory: string | undefined;
  private fileRows = 0;
  private closed = false;
  /** The spill file's name was removed once it was open (openFile)… */
  private unlinked = false;
  /** …and its directory too (where that failed, an NFS `.nfs*` file in it, close() removes it). */
  private directoryRemoved = false;

  constructor(
    readonly width: number,
    readonly blockRows: number,
    memoryBytes: number,
    private readonly parent: string,
    private readonly onSpillUnavailable?: (error: Error) => void,
    /** Where the in-memory blocks come from and go back to (RowBlockPool); default: new arrays. */
    blocks?: RowBlockSource,
  ) {
    this.memoryRows = Math.floor(memoryBytes / (4 * width));
    // Whole blocks from the start only where the budget holds one.
    this.memory = new MemoryRowStore(width, blockRows, blocks, this.memoryRows >= blockRows);
  }

  get rows(): number {
    return this.memory.rows + this.fileRows;
  }

  async append(rows: Float32Array): Promise<void> {
    const w = this.width;
    const n = rows.length / w;
    const keep = Math.min(n, Math.max(0, this.memoryRows - this.memory.rows));
    if (keep > 0) this.memory.append(rows.subarray(0, keep * w));
    if (keep === n) return;
    const rest = rows.subarray(keep * w);
    const file = await this.openFile();
    if (!file) {
      this.memory.append(rest);
      return;
    }
    // Awaited before append returns, so the caller's chunk is not reused while it is written.
    const bytes = new Uint8Array(rest.buffer, rest.byteOffset, rest.byteLength);
    let written = 0;
    try {
      while (written < bytes.length) {
        const { bytesWritten } = await file.write(
          bytes,
          written,
          bytes.length - written,
          this.fileRows * w * 4 + written,
        );
        written += bytesWritten;
      }
    } catch (e) {
      throw this.spillFailure(
        e,
        'cannot keep the recalibration’s rows in its temporary spill file',
      );
    }
    this.fileRows += n - keep;
  }

  async *chunks(): AsyncGenerator<{ data: Float32Array; rows: number }> {
    yield* this.memory.chunks();
    const file = this.file;
    if (!file) return;
    const w = this.width;
    const block = new Float32Array(this.blockRows * w);
    const bytes = new Uint8Array(block.buffer);
    for (let row = 0; row < this.fileRows; row += this.blockRows) {
      const n = Math.min(this.blockRows, this.fileRows - row);
      const length = n * w * 4;
      let read = 0;
      while (read < length) {
        const at = row * w * 4 + read;
        let bytesRead: number;
        try {
          ({ bytesRead } = await file.read(bytes, read, length - read, at));
        } catch (e) {
          throw this.spillFailure(
            e,
            'cannot read the recalibration’s rows back from its temporary spill file',
          );
        }
        if (bytesRead === 0) throw this.endedEarly(at);
        read += bytesRead;
      }
      yield { data: block.subarray(0, n * w), rows: n };
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.memory.close();
    const { file, directory } = this;
    this.file = undefined;
    this.directory = undefined;
    await file?.close();
    // Its directory, unless removed at open (another store may have that name by now).
    if (directory && !this.directoryRemoved) await rm(directory, { recursive: true, force: true });
  }

  /** The spill file's path (once its directory exists). */
  private get filePath(): string {
    return join(this.directory ?? this.parent, 'rows.f32');
  }

  /** The spill file as messages name it: its name, and whether the name is gone (held open). */
  private get shownPath(): string {
    return this.unlinked
      ? `${this.filePath} (its name removed, the file held open)`
      : this.filePath;
  }

  /**
   * `e` as STORAGE_FULL or STORAGE_UNAVAILABLE where its errno is the storage's, the message naming
   * the spill file by its absolute path (it is outside the repository) and what to do:
   * `cannot keep the recalibration’s rows in its temporary spill file: no space left on the device
   * (ENOSPC) writing /tmp/normserve-recalibration-Xq3f/rows.f32; free space in /tmp, …`.
   */
  private spillFailure(e: unknown, operation: string): unknown {
    const facts = storageErrno(e);
    if (!facts) return e;
    const code = facts.code === 'STORAGE_FULL' ? 'STORAGE_FULL' : 'STORAGE_UNAVAILABLE';
    return new NormserveError(
      code,
      `${operation}: ${facts.words} (${facts.errno}) ${facts.doing} ${facts.path ?? this.filePath}; ${SPILL_ADVICE[facts.errno === 'EMFILE' || facts.errno === 'ENFILE' ? 'DESCRIPTORS' : code](this.parent)}`,
      { cause: e, extra: { errno: facts.errno } },
    );
  }

  /** The spill file held fewer bytes than were written to it: another process shortened it. */
  private endedEarly(at: number): NormserveError {
    const written = this.fileRows * this.width * 4;
    return new NormserveError(
      'STORAGE_UNAVAILABLE',
      this.unlinked
        ? `cannot read the recalibration’s rows back from its temporary spill file: ${this.shownPath} ends at byte ${at} of the ${written} written, so another process shortened it through this process's descriptor of it; raise RECALIBRATION_MEMORY_BYTES to keep more of the rows in memory`
        : `cannot read the recalibration’s rows back from its temporary spill file: ${this.filePath} ends at byte ${at} of the ${written} written, so another process shortened it (a cleaner of ${this.parent}?); set TMPDIR to a directory nothing cleans while the server runs, or raise RECALIBRATION_MEMORY_BYTES to keep more of the rows in memory`,
    );
  }

  /** The spill file, or undefined (rows go to memory from now on) where none can be created. */
  private async openFile(): Promise<FileHandle | undefined> {
    if (this.closed) throw new Error('the row store is closed');
    if (!this.file) {
      try {
        this.directory = await mkdtemp(join(this.parent, 'normserve-recalibration-'));
      } catch (e) {
        const code = errnoOf(e);
        if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOENT')
          throw this.spillFailure(e, 'cannot create the recalibration’s temporary spill directory');
        this.memoryRows = Number.POSITIVE_INFINITY;
        this.onSpillUnavailable?.(e as Error);
        return undefined;
      }
      try {
        this.file = await open(this.filePath, 'w+', 0o600);
      } catch (e) {
        throw this.spillFailure(e, 'cannot create the recalibration’s temporary spill file');
      }
      // Nothing left on disk by a process that dies holding it; close() removes what stays.
      await unlink(this.filePath)
        .then(() => {
          this.unlinked = true;
          return rmdir(this.directory!);
        })
        .then(() => {
          this.directoryRemoved = true;
        })
        .catch(() => undefined);
    }
    return this.file;
  }
}
