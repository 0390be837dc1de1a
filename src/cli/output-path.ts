import { randomBytes } from 'node:crypto';
import { renameSync, rmdirSync, rmSync } from 'node:fs';
import {
  access,
  constants,
  lstat,
  mkdir,
  open,
  readlink,
  realpath,
  rename,
  stat,
  writeFile,
} from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { errnoOf, errnoWords, NormserveError } from '../errors/index.js';
import { repositoryDirectoryHolding } from '../service/index.js';
import { cleanUpOnSignal } from './on-signal.js';

/** Why a file system error stopped a write, in words (the errno names only what is unexpected). */
function why(e: unknown): string {
  switch (errnoOf(e)) {
    case 'ENOENT':
      return 'no such directory';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOTDIR':
    case 'EEXIST':
      return 'a file is in the way (the path, or a directory on it, is a file)';
    default:
      return errnoWords(e) ?? (e as Error).message;
  }
}

/** A path with its existing directories' links resolved (the rest as given). */
export async function realPath(path: string): Promise<string> {
  const full = resolve(path);
  const real = await realpath(full).catch(() => undefined);
  if (real !== undefined) return real;
  const parent = dirname(full);
  return parent === full ? full : join(await realPath(parent), basename(full));
}

/**
 * Refuses an --out whose bytes would land (at `landsAt`, links followed) inside a directory of the
 * model's repository (a model's, its own or another's, or a new one: repositoryDirectoryHolding):
 * a file there could replace a version's model.safetensors or config.json, or an active-version
 * record, which the server reads, or make a model of a new directory (review60: export-onnx's
 * `--out <model>/1/model.safetensors` broke version 1 with exit 0; the same into a sibling model,
 * through a link to a file not there yet, and into a new directory, reviews of 2026-12-04; a
 * report's `--out models/digits` dropped its HTML and pictures into the model, h248).
 */
export async function refuseInsideRepository(
  out: string,
  landsAt: string,
  repository: string,
  instead: string,
): Promise<void> {
  const root = await realPath(repository);
  const modelDir = await repositoryDirectoryHolding(root, await realPath(landsAt));
  if (modelDir === undefined) return;
  // The out directory itself, new at the repository's top (a report's): named once, with the
  // repository (h265: "--out R/rep: inside R/rep").
  const where =
    modelDir === (await realPath(out))
      ? `a directory of the model repository ${repository}`
      : `inside ${modelDir}, a directory of the model repository`;
  throw new NormserveError(
    'OUTPUT_WRITE_FAILED',
    `--out ${out}: ${where}, which the server reads as a model's; ${instead}`,
  );
}

/** OUTPUT_WRITE_FAILED for `path`, saying why; a NormserveError passes through unchanged. */
export function outputWriteFailed(path: string, e: unknown): NormserveError {
  if (e instanceof NormserveError) return e;
  return new NormserveError('OUTPUT_WRITE_FAILED', `cannot write ${path}: ${why(e)}`, { cause: e });
}

/**
 * Makes sure `dir` is a directory this process can write into, creating it (and its parents) if
 * needed: checked before the work that fills it (a training run of minutes), not after. Returns
 * the directories it created, deepest first, for a run that fails or is interrupted to remove
 * (removeEmptyDirectoriesSync): "nothing was written" is then true.
 */
export async function prepareOutputDirectory(dir: string, flag: string): Promise<string[]> {
  const created: string[] = [];
  try {
    await makeDirectories(dir, created);
    if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error(), { code: 'ENOTDIR' });
    await access(dir, constants.W_OK);
    return created;
  } catch (e) {
    removeEmptyDirectoriesSync(created);
    throw new NormserveError(
      'OUTPUT_WRITE_FAILED',
      `${flag} ${dir}: cannot write there: ${why(e)}`,
      {
        cause: e,
      },
    );
  }
}

/**
 * Makes sure none of `files` in the directory `dir` is a directory (or a link to one), which a
 * write would fail on: checked before the first is written, so a run writes all of them or none
 * (report wrote its SVGs, then failed on index.html). Refused as OUTPUT_WRITE_FAILED naming it.
 */
export async function checkOutputFiles(dir: string, files: Iterable<string>): Promise<void> {
  for (const file of files) {
    const path = join(dir, file);
    if ((await stat(path).catch(() => undefined))?.isDirectory())
      throw outputWriteFailed(path, Object.assign(new Error(), { code: 'EISDIR' }));
  }
}

/**
 * Makes sure the directory `path` (`what`: "version 3 of model x") can be created by the work
 * that fills it, before that work (a training run of minutes): nothing is at `path` yet, and its
 * parent is a directory this process can write into, or does not exist yet (it is created with
 * it). Refused as `<flag> <value>: cannot write there: …` naming the exact path in the way.
 */
export async function checkNewDirectory(
  path: string,
  what: string,
  flag: string,
  value: string,
): Promise<void> {
  const refuse = (why: string, cause?: unknown) =>
    new NormserveError('OUTPUT_WRITE_FAILED', `${flag} ${value}: cannot write there: ${why}`, {
      cause,
    });
  const parent = dirname(path);
  const parentStats = await lstat(parent).catch(() => undefined);
  if (parentStats !== undefined) {
    if (!parentStats.isDirectory())
      throw refuse(`${parent} is ${kindOf(parentStats)}, not a directory (${what} goes in it)`);
    try {
      await access(parent, constants.W_OK);
    } catch (e) {
      throw refuse(`${parent}: ${why(e)}`, e);
    }
  }
  const existing = await lstat(path).catch(() => undefined);
  if (existing !== undefined)
    throw refuse(`${path} (where ${what} goes) is already ${kindOf(existing)}`);
}

const kindOf = (stats: import('node:fs').Stats): string =>
  stats.isDirectory()
    ? 'a directory'
    : stats.isSymbolicLink()
      ? 'a symbolic link'
      : stats.isFile()
        ? 'a file'
        : 'a special file';

/**
 * `mkdir -p`, one level at a time: Node 20's `mkdir(…, { recursive: true })` never settles where
 * mkdir fails with ENOENT under an existing directory (`--out /proc/x` spun a core forever).
 */
async function makeDirectories(dir: string, created: string[]): Promise<void> {
  try {
    await mkdir(dir);
    created.unshift(dir);
    return;
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'EEXIST') return; // a directory, or a file the caller's stat reports
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw e;
  }
  await makeDirectories(dirname(dir), created);
  const made = await mkdir(dir).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
      return false;
    },
  );
  if (made) created.unshift(dir);
}

/**
 * Removes `dirs` (deepest first) where they are empty: what a failed or interrupted run created
 * and did not fill. A directory that holds anything (another process wrote there meanwhile) is
 * kept, and so are its parents; one that is not there (not made yet) is skipped. Synchronous, for a signal handler; errors are not the run's to
 * report.
 */
export function removeEmptyDirectoriesSync(dirs: readonly string[]): void {
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch (e) {
      // Never made (the model's directory, before the publish makes it): its parent is next.
      if (errnoOf(e) !== 'ENOENT') return;
    }
  }
}

/** An output file's content: text (written as UTF-8) or bytes. */
export type OutputContent = string | Uint8Array;

/**
 * Writes `content` to a new file at `path` (never one already there) and fsyncs it: its bytes are
 * on the disk before a rename makes them the output's, so that a crash of the machine after the
 * rename finds the new file whole, not a file of the right name with nothing in it yet.
 */
async function writeNew(path: string, content: OutputContent): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** One file written all or none (replaceAllOrNone): where it lands and the path errors name. */
interface OutputFile {
  /** The file replaced: its temporary is written beside it. */
  path: string;
  content: OutputContent;
  /** The path OUTPUT_WRITE_FAILED names (the --out given, where a link led elsewhere). */
  shown: string;
}

/**
 * The one rule every CLI's output file is written by (writeFilesAllOrNone, writeOutputFile):
 * each file under a temporary name beside it first (`<file>.tmp-<pid>-<random>`), written and
 * fsynced, then renamed into place, in their order, once every one is written, so that a failure
 * (a full device, h248) or a signal (SIGINT, SIGTERM, SIGHUP: `onSignal` runs too, then the
 * process ends by it) leaves the files as they were, with the temporaries removed. A signal once
 * the renames have begun finishes them first (renames in one directory take microseconds and need
 * no space: h252), so the files are then the new ones, whole; only a rename failing part-way would
 * leave the files renamed so far (put the one that refers to the others last). OUTPUT_WRITE_FAILED
 * names the file that failed. The directories are not fsynced after the renames: a crash of the
 * machine right after may bring back the earlier files, whole, as it may undo any recent change.
 */
async function replaceAllOrNone(files: readonly OutputFile[], onSignal: () => void): Promise<void> {
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const staged = (file: OutputFile) => `${file.path}${suffix}`;
  /** Files written under their temporary name so far; renames begun at `renamed`. */
  let written = 0;
  let renamed: number | undefined;
  const removeStagedSync = (from = 0) => {
    for (const file of files.slice(from, written)) {
      try {
        rmSync(staged(file), { force: true });
      } catch {
        // ENOTDIR (a file on the path) fails the clean-up too: the error to report is the write's.
      }
    }
  };
  await cleanUpOnSignal(
    () => {
      if (renamed === undefined) {
        // One under way is removed too: its name is taken before its write starts.
        written = Math.min(written + 1, files.length);
        removeStagedSync();
        onSignal();
        return;
      }
      for (let i = renamed; i < files.length; i++) {
        try {
          renameSync(staged(files[i]!), files[i]!.path);
        } catch (e) {
          // The rename under way may have moved this one already, its callback not run yet.
          if (i === renamed && errnoOf(e) === 'ENOENT') continue;
          removeStagedSync(i);
          return;
        }
      }
    },
    async () => {
      try {
        for (const file of files) {
          await writeNew(staged(file), file.content).catch((e: unknown) => {
            throw outputWriteFailed(file.shown, e);
          });
          written++;
        }
        renamed = 0;
        for (const file of files) {
          await rename(staged(file), file.path).catch((e: unknown) => {
            throw outputWriteFailed(file.shown, e);
          });
          renamed++;
        }
      } catch (e) {
        // A write that failed may have left its file: removed with the others.
        written = Math.min(written + 1, files.length);
        removeStagedSync(renamed ?? 0);
        throw e;
      }
    },
  );
}

/**
 * Writes `files` (name → text or bytes) into the directory `dir` all or none, by the rule of
 * replaceAllOrNone: a failure or a signal leaves the directory as it was, an earlier report's
 * files unchanged; index.html goes last, since it refers to the others. OUTPUT_WRITE_FAILED names
 * the file that failed, in `dir`.
 */
export async function writeFilesAllOrNone(
  dir: string,
  files: ReadonlyMap<string, OutputContent>,
  onSignal: () => void = () => {},
): Promise<void> {
  await replaceAllOrNone(
    [...files].map(([name, content]) => ({
      path: join(dir, name),
      content,
      shown: join(dir, name),
    })),
    onSignal,
  );
}

/** Links followed at most (Linux's own bound, ELOOP). */
const MAX_LINKS = 40;

/** A process's descriptor directory, where /dev/fd and /dev/stdout lead (proc(5)). */
const DESCRIPTOR_DIRECTORY = /^\/proc\/(\d+|self|thread-self)(\/task\/\d+)?\/fd$/;

/** Where an --out file's bytes land: `file`, links followed; `open`: written by opening --out. */
export interface OutputTarget {
  file: string;
  open: boolean;
}

/**
 * Follows --out's links to the file its bytes land in, as an open would: a regular file or none yet
 * (a dangling link's target too) is replaced whole, `file` renamed over; anything else that is not
 * a directory (a pipe, a terminal, a device) is opened and written, as onnx.save does, since a
 * rename would replace the device node or the pipe with a regular file. A process's descriptor
 * links (/dev/stdout, /dev/fd/1 → /proc/<pid>/fd/1) are opened too: what a shell's redirection set
 * up (a file, a pipe) is written through the descriptor, not replaced; `file` is then the path the
 * descriptor names. Every other link is followed from its own directory, links resolved.
 */
export async function resolveOutputTarget(path: string): Promise<OutputTarget> {
  let current = resolve(path);
  for (let hop = 0; hop <= MAX_LINKS; hop++) {
    const info = await lstat(current).catch(() => undefined);
    if (info === undefined) return { file: await realPath(current), open: false };
    if (!info.isSymbolicLink()) {
      if (info.isDirectory())
        throw new NormserveError('OUTPUT_WRITE_FAILED', `cannot write ${path}: it is a directory`);
      return { file: await realPath(current), open: !info.isFile() };
    }
    const to = await readlink(current);
    // The link's own directory, its links resolved: `..` in a relative link is taken from there,
    // as the kernel takes it.
    const directory = await realPath(dirname(current));
    if (DESCRIPTOR_DIRECTORY.test(directory)) {
      // A descriptor (/dev/stdout, /dev/fd/1): a path it names is checked, a pipe is not one.
      return {
        file: isAbsolute(to) ? await realPath(to) : join(directory, basename(current)),
        open: true,
      };
    }
    current = resolve(directory, to);
  }
  throw new NormserveError(
    'OUTPUT_WRITE_FAILED',
    `cannot write ${path}: more than ${MAX_LINKS} symbolic links on the way`,
  );
}

/**
 * Writes `content` to the --out `path` as `target` (resolveOutputTarget) says. A file (or none
 * yet) is replaced whole by replaceAllOrNone's rule, report's: its temporary beside target.file,
 * fsynced, renamed over it; a failure or a signal leaves the earlier file as it was and no
 * temporary. A pipe, a device or a descriptor (`open`) is opened and written, as onnx.save writes
 * it: there is nothing to rename, no temporary, and no fsync (a pipe has none). Either way a
 * signal runs `onSignal` (removing the directories the run made), then ends the process by it;
 * OUTPUT_WRITE_FAILED names `path`.
 */
export async function writeOutputFile(
  path: string,
  target: OutputTarget,
  content: OutputContent,
  onSignal: () => void = () => {},
): Promise<void> {
  if (!target.open) {
    await replaceAllOrNone([{ path: target.file, content, shown: path }], onSignal);
    return;
  }
  await cleanUpOnSignal(onSignal, () =>
    writeFile(path, content).catch((e: unknown) => {
      throw outputWriteFailed(path, e);
    }),
  );
}
