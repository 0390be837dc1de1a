import { type FileHandle, mkdtemp, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { MemoryRowStore, type RowStore } from '../recalibration/index.js';

/**
 * The rows of an `exact` or `prior` recalibration, kept until every BatchNorm has read them:
 * the first `memoryBytes` in memory, the rest appended to a temporary file (its own directory
 * under `directory`, removed by close()), so that a 1 M-row upload does not hold 256 MB of rows
 * (64 float32 features) in the server. Reading back goes through one reused block of
 * `blockRows` rows. The file holds the machine's float32 bytes and is read by the process that
 * wrote it; a process killed mid-recalibration leaves it in the temporary directory.
 */
export class SpillingRowStore implements RowStore {
  private readonly memory: MemoryRowStore;
  private readonly memoryRows: number;
  private file: FileHandle | undefined;
  private directory: string | undefined;
  private fileRows = 0;
  private closed = false;

  constructor(
    readonly width: number,
    readonly blockRows: number,
    memoryBytes: number,
    private readonly parent: string,
  ) {
    this.memory = new MemoryRowStore(width, blockRows);
    this.memoryRows = Math.floor(memoryBytes / (4 * width));
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

  private async openFile(): Promise<FileHandle> {
    if (this.closed) throw new Error('the row store is closed');
    if (!this.file) {
      this.directory = await mkdtemp(join(this.parent, 'normserve-recalibration-'));
      this.file = await open(join(this.directory, 'rows.f32'), 'w+', 0o600);
    }
    return this.file;
  }
}
