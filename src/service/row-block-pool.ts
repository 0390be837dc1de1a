import type { RowBlockSource } from '../recalibration/index.js';

/**
 * How long blocks stay pooled after the last recalibration gave them back: long enough for a
 * client's next upload, not so long that a server which recalibrated once holds the memory for good.
 */
export const ROW_BLOCK_IDLE_MS = 60_000;

/**
 * The row blocks of finished recalibrations, kept for the next ones (MemoryRowStore's block
 * source), at most `maxBytes` of them, and dropped ROW_BLOCK_IDLE_MS after the last was given
 * back. Why: 49 MiB of fresh process memory is faulted in and zeroed page by page, which cost a
 * 200,000-row upload more CPU than its first statistics pass; copying into blocks already touched
 * does not (bench/README.md, "Recalibration", fourth round). A block taken is either a pooled one
 * of that length or none (the store then grows its own, as without a pool); its contents are
 * whatever the last recalibration left there.
 */
export class RowBlockPool implements RowBlockSource {
  private free: Float32Array[] = [];
  private freeBytes = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly maxBytes: number,
    private readonly idleMs = ROW_BLOCK_IDLE_MS,
  ) {}

  /** Bytes held for reuse now. */
  get bytes(): number {
    return this.freeBytes;
  }

  take(length: number): Float32Array | undefined {
    const i = this.free.findIndex((b) => b.length === length);
    if (i < 0) return undefined;
    const [block] = this.free.splice(i, 1) as [Float32Array];
    this.freeBytes -= block.byteLength;
    return block;
  }

  give(blocks: readonly Float32Array[]): void {
    for (const block of blocks) {
      if (this.freeBytes + block.byteLength > this.maxBytes) break;
      this.free.push(block);
      this.freeBytes += block.byteLength;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.clear(), this.idleMs);
    this.timer.unref();
  }

  /** Drops every pooled block (the garbage collector frees them). */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.free = [];
    this.freeBytes = 0;
  }
}
