/** Types of fs-faults.mjs (a plain module, so that a child process can preload it). */
export interface FsFault {
  /** An fs/promises function's name, or a FileHandle's `fsync`, `write` or `read`. */
  op: string;
  /** A part of the path the call must name (default: any). */
  path?: string;
  /** How that path must end. */
  suffix?: string;
  /** `open` only: fail only an open that creates or writes. */
  writing?: boolean;
  /** The errno the call fails with: EROFS, ENOSPC, EIO… (none: it only waits `delayMs`). */
  code?: string;
  /** How long a matching call waits before it fails (or, without `code`, goes through). */
  delayMs?: number;
  /** How many matching calls succeed before the first failure (default 0). */
  skip?: number;
  /** How many calls fail (default: every one). */
  times?: number;
  hits?: number;
}
export function injectFsFaults(list: FsFault[]): void;
export function clearFsFaults(): void;
export function faultHits(): number[];
export const FS_FAULTS_MODULE: string;
export const READ_ONLY: FsFault[];
