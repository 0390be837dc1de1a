import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, rmSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { errnoOf } from '../errors/index.js';
import { ownPidNamespace, ownStartTicks } from './process-start.js';
import { openWithoutBlocking } from './repository-files.js';
import { UnsyncedWrite } from './storage-failure.js';

/** Prefix of temporary entries; the repository scan ignores names starting with a dot. */
export const TEMP_PREFIX = '.tmp-';

/**
 * A temporary name that says who made it (`.tmp-<host>-<pid>_<start ticks>_<pid namespace>-
 * <random>`), so start-up cleanup can tell an abandoned leftover of a dead local process, or of an
 * earlier process with the same pid, from a live writer here, in another container of this host
 * name, or on another replica. The start ticks and namespace (processStartTicks, ownPidNamespace)
 * are left out where /proc cannot tell them: `.tmp-<host>-<pid>-<random>`, as every temporary was
 * named before 2026-12-05 (and `<pid>_<start ticks>` for part of that day).
 */
export function temporaryName(): string {
  return `${TEMP_PREFIX}${hostTag()}-${writerTag()}-${randomBytes(6).toString('hex')}`;
}

/**
 * A host name as temporary names carry it, without the '-' that separates their fields: the name
 * itself when it is letters and digits only, else its letters and digits with '_' for every other
 * character, cut at 64, and 8 hex digits of the name's SHA-256. So `node-1`, `node.1` and `node_1`
 * are three hosts (a plain replacement made one of them, and each could remove the others'
 * temporaries as its own dead process's), and the tag stays short enough for a file name.
 */
export function hostTagOf(name: string): string {
  if (/^[A-Za-z0-9]+$/.test(name)) return name;
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.replace(/[^A-Za-z0-9]/g, '_').slice(0, 64)}_${digest}`;
}

/** This host's name as it appears in temporary names (hostTagOf). */
export const hostTag = (): string => hostTagOf(hostname());

/** This process as temporary names name it: `<pid>_<start ticks>_<pid namespace>`, or `<pid>`. */
function writerTag(): string {
  const ticks = ownStartTicks();
  const namespace = ownPidNamespace();
  return ticks === undefined || namespace === undefined
    ? String(process.pid)
    : `${process.pid}_${ticks}_${namespace}`;
}

/** Who wrote a temporary, from its name (temporaryName); undefined for another kind of name. */
export interface TemporaryWriter {
  host: string;
  pid: number;
  /** Its processStartTicks; undefined in a name without them. */
  startTicks?: number;
  /** Its ownPidNamespace; undefined in a name without it. */
  pidNamespace?: number;
}

export function temporaryWriter(name: string): TemporaryWriter | undefined {
  if (!name.startsWith(TEMP_PREFIX)) return undefined;
  const match = /^([A-Za-z0-9_]+)-([1-9][0-9]*)(?:_([0-9]+)(?:_([0-9]+))?)?-/.exec(
    name.slice(TEMP_PREFIX.length),
  );
  if (!match) return undefined;
  const [pid, ticks, namespace] = [match[2], match[3], match[4]].map((n) =>
    n === undefined ? undefined : Number(n),
  );
  if (pid === undefined || !Number.isSafeInteger(pid)) return undefined;
  return {
    host: match[1]!,
    pid,
    ...(ticks !== undefined && Number.isSafeInteger(ticks) ? { startTicks: ticks } : {}),
    ...(namespace !== undefined && Number.isSafeInteger(namespace)
      ? { pidNamespace: namespace }
      : {}),
  };
}

/**
 * Removes this process's own temporaries in `dir` (temporaryName's, by host and pid), at once and
 * synchronously: for a process about to end on a signal in the middle of a write (a CLI's
 * SIGINT), whose leftovers would otherwise wait for the next publish or server start-up. A
 * missing `dir` holds none.
 */
export function removeOwnTemporariesSync(dir: string): void {
  const own = `${TEMP_PREFIX}${hostTag()}-${writerTag()}-`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    // maxRetries: a file the interrupted write is creating may land between listing and rmdir.
    if (name.startsWith(own))
      rmSync(join(dir, name), { recursive: true, force: true, maxRetries: 3 });
  }
}

/** fsync a file or directory by path (directories: makes a rename or creation durable). */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await openWithoutBlocking(path);
  try {
    await handle.sync().catch(naming(path));
  } finally {
    await handle.close();
  }
}

/**
 * Gives an error of a call on a file handle (write, fsync: Node's error names no path) the path
 * of its file, so that storageFailure can name it.
 */
const naming =
  (path: string) =>
  (e: unknown): never => {
    if (e instanceof Error && (e as NodeJS.ErrnoException).path === undefined)
      Object.assign(e, { path });
    throw e;
  };

async function writeDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(bytes).catch(naming(path));
    await handle.sync().catch(naming(path));
  } finally {
    await handle.close();
  }
}

/**
 * fsync of the directory a rename just changed: the rename is done (every reader sees it), so a
 * failure here is an UnsyncedWrite of `written`, for the caller to report as what happened.
 */
async function syncAfterRename(dir: string, written: string): Promise<void> {
  try {
    await fsyncPath(dir);
  } catch (e) {
    throw new UnsyncedWrite(written, e);
  }
}

/**
 * Writes `bytes` to `path` so that a reader (or a crash) sees the old file or the new one, never
 * a mix: temporary file in the same directory, fsync, rename over the target, fsync the directory.
 * `beforeRename` (a lock's fencing check) runs between the fsync and the rename: if it throws,
 * nothing was written. A failure of that last fsync is an UnsyncedWrite: the file is written, not
 * yet durable.
 */
export async function writeFileAtomically(
  dir: string,
  name: string,
  bytes: Uint8Array,
  createDir = false,
  beforeRename?: () => Promise<void>,
): Promise<void> {
  if (createDir) await mkdir(dir, { recursive: true });
  const temp = join(dir, `${temporaryName()}-${name}`);
  try {
    await writeDurably(temp, bytes);
    await beforeRename?.();
    await rename(temp, join(dir, name));
  } catch (e) {
    await rm(temp, { force: true }).catch(() => undefined); // a leftover: removed by cleanup
    throw e;
  }
  await syncAfterRename(dir, join(dir, name));
}

/**
 * A directory of files staged under a temporary name beside its destination (stageDirectory),
 * every file and the directory synced, hidden from every reader until `publish` renames it.
 */
export interface StagedDirectory {
  /**
   * Renames the staged directory into place under the name `chooseName` gives, then fsyncs the
   * parent; if another writer took that name first (rename fails with ENOTEMPTY/EEXIST, since a
   * published directory is never empty), it is asked again, so concurrent publishers on one shared
   * repository each get their own name. Returns the name used. `beforeRename` (a lock's fencing
   * check, and what must be recorded before the rename: a pin's intent) runs immediately before
   * each rename, given the name about to be used: if it throws, nothing was published. A failure of
   * the parent's fsync after the rename is an UnsyncedWrite naming the published directory; any
   * other failure removes the staged directory (discard), unless `keepOnFailure`: a caller whose
   * pin names the directory removes it itself, once the pin is undone (h264).
   */
  publish(
    chooseName: (attempt: number) => Promise<string>,
    maxAttempts?: number,
    beforeRename?: (name: string) => Promise<void>,
    keepOnFailure?: boolean,
  ): Promise<string>;
  /** Removes the staged directory (not published); a leftover that cannot be removed is cleanup's. */
  discard(): Promise<void>;
  /** Its temporary name in its parent (temporaryName). */
  readonly name: string;
}

/**
 * Writes `files` into a temporary directory of `parent` (created if missing), fsyncing every file
 * and the directory, for `publish` to rename into place later. A failure removes what was
 * written and throws.
 */
export async function stageDirectory(
  parent: string,
  files: ReadonlyMap<string, Uint8Array>,
): Promise<StagedDirectory> {
  await mkdir(parent, { recursive: true });
  const temp = join(parent, temporaryName());
  // A leftover that cannot be removed (a read-only or failing disk) is cleanup's later.
  const discard = () => rm(temp, { recursive: true, force: true }).catch(() => undefined);
  await mkdir(temp);
  try {
    for (const [name, bytes] of files) await writeDurably(join(temp, name), bytes);
    await fsyncPath(temp);
  } catch (e) {
    await discard();
    throw e;
  }
  return {
    discard,
    name: basename(temp),
    publish: async (chooseName, maxAttempts = 20, beforeRename, keepOnFailure = false) => {
      try {
        for (let attempt = 0; attempt < maxAttempts; attempt++) {
          const name = await chooseName(attempt);
          await beforeRename?.(name);
          try {
            await rename(temp, join(parent, name));
          } catch (e) {
            const code = errnoOf(e);
            if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
            continue;
          }
          await syncAfterRename(parent, join(parent, name));
          return name;
        }
        throw new Error(`could not find a free name in ${parent} after ${maxAttempts} attempts`);
      } catch (e) {
        if (!(e instanceof UnsyncedWrite) && !keepOnFailure) await discard();
        throw e;
      }
    },
  };
}
