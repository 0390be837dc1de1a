/**
 * The programs tests run as child processes (the CLIs, the server, the SIGKILL victim), started
 * from bundles that test/global-setup.ts builds with esbuild before every run: `node --import tsx`
 * spends 1–3 s compiling the sources of each child (more on a loaded machine), a bundle starts in
 * a fraction of that. The bundles are built from the same sources for every run, so they are
 * never stale; without them (a build that failed) the children run through tsx as before.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Every program a test starts, relative to the repository. */
export const ENTRIES = [
  'src/cli/server.ts',
  'src/cli/train.ts',
  'src/cli/predict.ts',
  'src/cli/recalibrate.ts',
  'src/cli/export-onnx.ts',
  'src/cli/report.ts',
  'tools/night-shift.ts',
  'test/faults/publish-loop.ts',
  'test/faults/lock-contender.ts',
] as const;

export type Entry = (typeof ENTRIES)[number];

/**
 * Inside node_modules, so the bundles' imports of packages resolve as the sources' do; one
 * directory per checkout, since worktrees may share one node_modules (a symlink) and each run
 * rebuilds its bundles from its own sources.
 */
export const BUNDLE_DIR = join(
  ROOT,
  'node_modules',
  '.cache',
  // Not under the earlier shared 'normserve-test-entries', which older checkouts still remove.
  'normserve-test-entries-by-checkout',
  createHash('sha256').update(ROOT).digest('hex').slice(0, 12),
);

export const bundlePath = (entry: Entry): string =>
  join(BUNDLE_DIR, entry.replace(/\.ts$/, '.mjs'));

/** Node's arguments that run `entry`: its bundle, or the source through tsx. */
export function nodeArgs(entry: Entry): string[] {
  const bundle = bundlePath(entry);
  return existsSync(bundle) ? [bundle] : ['--import', 'tsx', join(ROOT, entry)];
}

/**
 * Runs `entry` to its end with `args` from the repository's root: its exit status and output.
 * Killed after `timeoutMs` (generous: a loaded machine starts a child slowly), when status is null.
 */
export function runEntry(entry: Entry, args: readonly string[], timeoutMs = 120_000) {
  const result = spawnSync(process.execPath, [...nodeArgs(entry), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Starts `entry` with `args` from the repository's root, its file operations failing or waiting as
 * `faults` say (test/helpers/fs-faults.mjs, preloaded), stdout and stderr piped; `ended` resolves
 * with its exit code and signal.
 */
export function spawnWithFsFaults(
  entry: Entry,
  args: readonly string[],
  faults: readonly object[],
): { child: ChildProcess; ended: Promise<[number | null, NodeJS.Signals | null]> } {
  const child = spawn(process.execPath, [...nodeArgs(entry), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      NODE_OPTIONS: `--import ${fileURLToPath(new URL('./fs-faults.mjs', import.meta.url))}`,
      NORMSERVE_TEST_FS_FAULTS: JSON.stringify(faults),
    },
  });
  const ended = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.on('close', (code, signal) => resolve([code, signal])),
  );
  return { child, ended };
}
