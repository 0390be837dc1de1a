import { randomBytes } from 'node:crypto';
import { renameSync, rmdirSync, rmSync } from 'node:fs';
import { access, constants, lstat, mkdir, open, realpath, rename, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
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

/** Writes `text` to a new file at `path` (never one already there). */
async function writeNew(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(text);
  } finally {
    await handle.close();
  }
}

/**
 * Writes `files` (name → text) into the directory `dir` all or none: each under a temporary name
 * first, renamed into place, in their order, once every one is written, so that a failure (a full
 * device, h248) or a signal (SIGINT, SIGTERM, SIGHUP: `onSignal` runs too, then the process ends
 * by it) leaves the directory as it was, an earlier report's files unchanged, with the temporaries
 * removed. A signal once the renames have begun finishes them first (renames in one directory take
 * microseconds and need no space: h252), so the directory then holds the new files whole; only a
 * rename failing part-way would leave the files renamed so far (put the one that refers to the
 * others, index.html, last). OUTPUT_WRITE_FAILED names the file that failed.
 */
export async function writeFilesAllOrNone(
  dir: string,
  files: ReadonlyMap<string, string>,
  onSignal: () => void = () => {},
): Promise<void> {
  const suffix = `.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const names = [...files.keys()];
  const staged = (file: string) => join(dir, `${file}${suffix}`);
  /** Files written under their temporary name so far; renames begun at `renamed`. */
  let written = 0;
  let renamed: number | undefined;
  const removeStagedSync = (from = 0) => {
    for (const file of names.slice(from, written)) rmSync(staged(file), { force: true });
  };
  await cleanUpOnSignal(
    () => {
      if (renamed === undefined) {
        // One under way is removed too: its name is taken before its write starts.
        written = Math.min(written + 1, names.length);
        removeStagedSync();
        onSignal();
        return;
      }
      for (let i = renamed; i < names.length; i++) {
        try {
          renameSync(staged(names[i]!), join(dir, names[i]!));
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
        for (const [file, text] of files) {
          await writeNew(staged(file), text).catch((e: unknown) => {
            throw outputWriteFailed(join(dir, file), e);
          });
          written++;
        }
        renamed = 0;
        for (const file of names) {
          await rename(staged(file), join(dir, file)).catch((e: unknown) => {
            throw outputWriteFailed(join(dir, file), e);
          });
          renamed++;
        }
      } catch (e) {
        // A write that failed may have left its file: removed with the others.
        written = Math.min(written + 1, names.length);
        removeStagedSync(renamed ?? 0);
        throw e;
      }
    },
  );
}
