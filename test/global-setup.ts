/**
 * Before every test run: bundles the programs tests start as child processes (see
 * test/helpers/entries.ts). A failed build removes the bundles, and the children run through tsx.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { BUNDLE_DIR, bundlePath, ENTRIES, ROOT } from './helpers/entries.js';
import { TEMP_ROOT_VARIABLE } from './helpers/temp-root.js';

/**
 * Each module keeps the import.meta.url of its source file (several read files beside them, e.g.
 * `new URL('../../package.json', import.meta.url)`), not the bundle's.
 */
const sourceImportMetaUrl: Plugin = {
  name: 'source-import-meta-url',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => ({
      contents: (await readFile(args.path, 'utf8')).replaceAll(
        'import.meta.url',
        JSON.stringify(pathToFileURL(args.path).href),
      ),
      loader: 'ts',
    }));
  },
};

/** Set once the bundles of this run are built (each project of the config runs this setup). */
const BUILT = 'NORMSERVE_TEST_BUNDLES_BUILT';

export default async function setup(): Promise<(() => void) | undefined> {
  if (process.env[BUILT] === '1') return undefined;
  process.env[BUILT] = '1';
  // The run's temporary directories (test/helpers/temp-root.ts), removed when it ends: a helper
  // that makes a repository in a beforeAll has no test to remove it after, and `npm test` left
  // some twenty repositories in /tmp each run (the newcomer's review of 2026-12-04).
  const tempRoot = mkdtempSync(join(tmpdir(), 'normserve-test-run-'));
  process.env[TEMP_ROOT_VARIABLE] = tempRoot;
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  try {
    await Promise.all(
      ENTRIES.map((entry) =>
        build({
          entryPoints: [join(ROOT, entry)],
          outfile: bundlePath(entry),
          bundle: true,
          platform: 'node',
          format: 'esm',
          target: 'node20',
          packages: 'external',
          plugins: [sourceImportMetaUrl],
          logLevel: 'warning',
        }),
      ),
    );
  } catch (e) {
    rmSync(BUNDLE_DIR, { recursive: true, force: true });
    process.stderr.write(`test entry bundles not built, children run through tsx: ${String(e)}\n`);
  }
  return () => rmSync(tempRoot, { recursive: true, force: true });
}
