import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MemoryRowStore, type RowBlockSource, type RowStore } from '../recalibration/index.js';

/**
 * The rows of an `exact` or `prior` recalibration, kept until every BatchNorm has read them:
 * the first `memoryBytes` in memory, the rest appended to a temporary file (its own directory
 * under `directory`, removed by close()), so that a 1 M-row upload does not hold 256 MB of rows
 * (64 float32 features) in the server. Reading back goes through one reused block of
 * `blockRows` rows. The file holds the machine's float32 bytes and is read by the process that
 * wrote it; a process killed mid-recalibration leaves it in the temporary directory.
 *
 * The file is also the faster place (a budget of 0): written rows land in the page cache without
 * a page fault each, while fresh process memory is faulted in and zeroed page by page — 200,000
 * digits rows through HTTP took 0.76–0.80× the wall time and 0.77–0.82× the server CPU with every
 * row in the file (bench/README.md, "Recalibration", third round). The server's default budget is
 * still 64 MiB: a default should not put every upload on disk.
 * Where no temporary directory can be created (a read-only filesystem), the rows stay in memory
 * instead and `onSpillUnavailable` is told once.
 */
export class SpillingRowStore implements RowStore {
  private readonly memory: MemoryRowStore;
  private memoryRows: number;
  private file: FileHandle | undefined;
  private directory: string | undefined;
  private fileRows = 0;
  private closed = false;

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
    while (written < bytes.length) {
      const { bytesWritten } = await file.write(
        bytes,
        written,
        bytes.length - written,
        this.fileRows * w * 4 + written,
      );
      written += bytesWritten;
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
        const { bytesRead } = await file.read(bytes, read, length - read, row * w * 4 + read);
        if (bytesRead === 0) throw new Error('the recalibration spill file ended early');
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
    if (directory) await rm(directory, { recursive: true, force: true });
  }

  /** The spill file, or undefined (rows go to memory from now on) where none can be created. */
  private async openFile(): Promise<FileHandle | undefined> {
    if (this.closed) throw new Error('the row store is closed');
    if (!this.file) {
      try {
        this.directory = await mkdtemp(join(this.parent, 'normserve-recalibration-'));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EROFS' && code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOENT') throw e;
        this.memoryRows = Number.POSITIVE_INFINITY;
        this.onSpillUnavailable?.(e as Error);
        return undefined;
      }
      this.file = await open(join(this.directory, 'rows.f32'), 'w+', 0o600);
    }
    return this.file;
  }
}
